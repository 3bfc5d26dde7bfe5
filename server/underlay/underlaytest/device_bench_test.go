package underlaytest

import (
	"fmt"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/models/underlay"
)

// BenchmarkSet1000VLANs: the device's side of a 1,000-VLAN push (1,104
// replaces: 1,000 VLANs, 4 trunk ports, 100 subinterfaces): applying the
// Set to a copy and validating the whole root with the generated schema.
func BenchmarkSet1000VLANs(b *testing.B) {
	var vs []underlay.VLAN
	for id := 1; id <= 1000; id++ {
		v := underlay.VLAN{ID: uint16(id), Name: fmt.Sprintf("vlan%d", id)}
		for p := 1; p <= 4; p++ {
			v.Members = append(v.Members, underlay.Member{Device: "d", Port: fmt.Sprintf("eth%d", p)})
		}
		if id%10 == 0 {
			v.Subinterfaces = []underlay.Subinterface{{Device: "d", Port: "eth9"}}
		}
		vs = append(vs, v)
	}
	want, err := underlay.Compile("d", vs)
	if err != nil {
		b.Fatal(err)
	}
	ops, err := underlay.Diff(&oc.Device{}, want)
	if err != nil {
		b.Fatal(err)
	}
	req := underlay.SetRequest(ops)
	s, _ := oc.Schema()
	d := &Device{schema: s}
	for range b.N {
		next := &oc.Device{}
		start := time.Now()
		if err := d.apply(next, req); err != nil {
			b.Fatal(err)
		}
		apply := time.Since(start)
		start = time.Now()
		if err := next.Validate(); err != nil {
			b.Fatal(err)
		}
		validate := time.Since(start)
		start = time.Now()
		clone(next)
		cl := time.Since(start)
		b.ReportMetric(float64(len(req.Replace)), "replaces")
		b.ReportMetric(float64(apply.Milliseconds()), "ms-apply")
		b.ReportMetric(float64(validate.Milliseconds()), "ms-validate")
		b.ReportMetric(float64(cl.Milliseconds()), "ms-clone")
	}
	_ = gpb.Encoding_JSON
}
