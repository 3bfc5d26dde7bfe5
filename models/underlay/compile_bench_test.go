package underlay

import (
	"fmt"
	"github.com/guildhouse-co/kedge/gen/oc"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"net/netip"
	"testing"
	"time"
)

func bigVLANs(dev string, n, ports int) []VLAN {
	var vs []VLAN
	for id := 1; id <= n; id++ {
		v := VLAN{ID: uint16(id), Name: fmt.Sprintf("vlan%d", id)}
		for p := 1; p <= ports; p++ {
			v.Members = append(v.Members, Member{Device: dev, Port: fmt.Sprintf("eth%d", p)})
		}
		if id%10 == 0 {
			v.Subinterfaces = []Subinterface{{Device: dev, Port: "eth9", Addresses: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(id / 256), byte(id % 256), 1}), 24)}}}
		}
		vs = append(vs, v)
	}
	return vs
}

// BenchmarkCompile1000VLANs: one device's configuration from 1,000 VLANs
// on 4 trunk ports with 100 subinterfaces: building the GoStructs, and
// validating them with the generated schema (Validate, entry by entry),
// beside ygot's validation of the whole root (which also walks every
// leafref).
func BenchmarkCompile1000VLANs(b *testing.B) {
	vs := bigVLANs("sw", 1000, 4)
	for range b.N {
		start := time.Now()
		d, err := Build("sw", vs)
		if err != nil {
			b.Fatal(err)
		}
		build := time.Since(start)
		start = time.Now()
		if err := Validate(d); err != nil {
			b.Fatal(err)
		}
		validate := time.Since(start)
		start = time.Now()
		if err := d.Validate(); err != nil {
			b.Fatal(err)
		}
		root := time.Since(start)
		b.ReportMetric(float64(build.Microseconds())/1e3, "ms-build")
		b.ReportMetric(float64(validate.Microseconds())/1e3, "ms-validate")
		b.ReportMetric(float64(root.Microseconds())/1e3, "ms-validate-root-ygot")
	}
}

// BenchmarkDiff1000VLANs: comparing a device's 1,000-VLAN configuration,
// as its JSON arrives, with the target: unmarshalled into GoStructs and
// diffed, and as a canonical snapshot (what drift checks use).
func BenchmarkDiff1000VLANs(b *testing.B) {
	d, err := Compile("sw", bigVLANs("sw", 1000, 4))
	if err != nil {
		b.Fatal(err)
	}
	js, err := JSON(d)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		start := time.Now()
		back := &oc.Device{}
		if err := oc.Unmarshal(js, back); err != nil {
			b.Fatal(err)
		}
		unmarshal := time.Since(start)
		start = time.Now()
		ops, err := Diff(back, d, d)
		if err != nil || len(ops) != 0 {
			b.Fatal(ops, err)
		}
		diff := time.Since(start)
		target, err := SnapshotOf(d)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		s := Snapshot{}
		if err := s.Add(&gpb.Path{}, js); err != nil {
			b.Fatal(err)
		}
		if drift := Drift(s, target); len(drift) != 0 {
			b.Fatal(drift)
		}
		snap := time.Since(start)
		b.ReportMetric(float64(unmarshal.Microseconds())/1e3, "ms-unmarshal")
		b.ReportMetric(float64(diff.Microseconds())/1e3, "ms-diff")
		b.ReportMetric(float64(snap.Microseconds())/1e3, "ms-snapshot+drift")
	}
}
