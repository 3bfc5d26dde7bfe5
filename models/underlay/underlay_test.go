package underlay

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestFromTree(t *testing.T) {
	in, props := FromTree(treeWith(t, sampleDoc))
	wantDevices := []Device{
		{Name: "sw1", Address: netip.MustParseAddr("192.0.2.1"), Port: 9339, Role: "access", CommitConfirmed: true, OnChange: true, CAFile: "ca.pem"},
		{Name: "sw2", Address: netip.MustParseAddr("192.0.2.2"), Port: 57400, OnChange: false, Username: "kedge", PasswordFile: "sw2.pw"},
	}
	if d := cmp.Diff(wantDevices, in.Devices, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("devices (-want +got):\n%s", d)
	}
	if in.CommitConfirm != 30 {
		t.Errorf("commit-confirm %d, want 30", in.CommitConfirm)
	}
	v10, _ := in.VLAN(10)
	want10 := VLAN{ID: 10, Name: "users",
		Members:       []Member{{Device: "sw1", Port: "eth1"}, {Device: "sw1", Port: "eth2", Untagged: true}, {Device: "sw2", Port: "eth2", Untagged: true}},
		Subinterfaces: []Subinterface{{Device: "sw1", Port: "eth9", Addresses: []netip.Prefix{pfx("10.10.0.1/24"), pfx("2001:db8:10::1/64")}}},
	}
	if d := cmp.Diff(want10, v10, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("vlan 10 (-want +got):\n%s", d)
	}
	if len(in.VLANs) != 4 || in.VLANs[0].ID != 10 || in.VLANs[3].ID != 40 {
		t.Errorf("vlans not sorted by id: %+v", in.VLANs)
	}
	wantProps := []Proposal{
		{ID: "m1", Tier: "site-owner", Emergency: true},
		{ID: "m2", Tier: "operator", Proposer: "alice", Devices: []string{"sw2"}, VLANs: []uint16{10, 20}},
	}
	if d := cmp.Diff(wantProps, props); d != "" {
		t.Errorf("proposals (-want +got):\n%s", d)
	}
	// An empty tree is an empty intent with the defaults.
	in, props = FromTree(treeWith(t, `{}`))
	if len(in.Devices)+len(in.VLANs)+len(props) != 0 || in.CommitConfirm != DefaultCommitConfirm {
		t.Errorf("empty tree: %+v %+v", in, props)
	}
}

// compileAll compiles every device's share of the intent.
func compileAll(t *testing.T, in Intent) map[string]*oc.Device {
	t.Helper()
	out := map[string]*oc.Device{}
	for _, d := range in.Devices {
		var vs []VLAN
		for _, v := range in.VLANs {
			if on, ok := v.On(d.Name); ok {
				vs = append(vs, on)
			}
		}
		cfg, err := Compile(d.Name, vs)
		if err != nil {
			t.Fatalf("compile %s: %v", d.Name, err)
		}
		out[d.Name] = cfg
	}
	return out
}

// TestCompileGolden pins the OpenConfig configuration the sample intent
// compiles to, per device (go test -update rewrites it).
func TestCompileGolden(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	var b bytes.Buffer
	for name, cfg := range sortedDevices(compileAll(t, in)) {
		js, err := JSON(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("== " + name + "\n")
		b.Write(js)
		b.WriteString("\n")
	}
	golden := filepath.Join("testdata", "compile.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), b.String()); d != "" {
		t.Errorf("compiled configuration differs from %s (-want +got):\n%s", golden, d)
	}
	// What the golden file shows, checked independently of it.
	sw1 := compileAll(t, in)["sw1"]
	sv := sw1.GetInterface("eth1").GetEthernet().GetSwitchedVlan()
	if sv.GetInterfaceMode() != oc.OpenconfigVlanTypes_VlanModeType_TRUNK || sv.NativeVlan != oc.UnionUint16(30) ||
		!slices.Equal(sv.TrunkVlans, []oc.Interface_Ethernet_SwitchedVlan_TrunkVlans_Union{oc.UnionUint16(10), oc.UnionUint16(20)}) {
		t.Errorf("sw1 eth1: %+v", sv)
	}
	if a := sw1.GetInterface("eth2").GetEthernet().GetSwitchedVlan(); a.GetInterfaceMode() != oc.OpenconfigVlanTypes_VlanModeType_ACCESS || a.AccessVlan != oc.UnionUint16(10) {
		t.Errorf("sw1 eth2: %+v", a)
	}
	si := sw1.GetInterface("eth9").GetSubinterface(10)
	if si.GetVlan().VlanId != oc.UnionUint16(10) || si.GetIpv4().GetAddress("10.10.0.1").GetPrefixLength() != 24 ||
		si.GetIpv6().GetAddress("2001:db8:10::1").GetPrefixLength() != 64 {
		t.Errorf("sw1 eth9.10: %+v", si)
	}
	if _, ok := sw1.Vlan[40]; ok {
		t.Error("VLAN 40 (on no device) compiled onto sw1")
	}
	if sw2 := compileAll(t, in)["sw2"]; len(sw2.Vlan) != 2 || sw2.Vlan[30] != nil {
		t.Errorf("sw2 VLANs %v, want 10 and 20", slices.Sorted(mapsKeys(sw2.Vlan)))
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sortedDevices(m map[string]*oc.Device) func(func(string, *oc.Device) bool) {
	return func(yield func(string, *oc.Device) bool) {
		for _, k := range slices.Sorted(mapsKeys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// TestCompileDeterministic: the same intent in any order compiles to the
// same bytes.
func TestCompileDeterministic(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	ref := map[string][]byte{}
	for name, cfg := range compileAll(t, in) {
		ref[name], _ = JSON(cfg)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		sh := in
		sh.VLANs = slices.Clone(in.VLANs)
		r.Shuffle(len(sh.VLANs), func(i, j int) { sh.VLANs[i], sh.VLANs[j] = sh.VLANs[j], sh.VLANs[i] })
		for i := range sh.VLANs {
			ms := slices.Clone(sh.VLANs[i].Members)
			r.Shuffle(len(ms), func(a, b int) { ms[a], ms[b] = ms[b], ms[a] })
			sh.VLANs[i].Members = ms
		}
		for name, cfg := range compileAll(t, sh) {
			got, _ := JSON(cfg)
			if !bytes.Equal(got, ref[name]) {
				t.Fatalf("%s compiled differently after shuffling the intent", name)
			}
		}
	}
}

func TestCompileConflict(t *testing.T) {
	vs := []VLAN{
		{ID: 10, Members: []Member{{Device: "sw1", Port: "eth1", Untagged: true}}},
		{ID: 20, Members: []Member{{Device: "sw1", Port: "eth1", Untagged: true}}},
	}
	_, err := Compile("sw1", vs)
	var ce *CompileError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Device != "sw1" || !strings.Contains(err.Error(), "eth1") {
		t.Fatalf("two untagged VLANs on a port: %v", err)
	}
}

// TestValidateRefuses proves the schema check is real: configurations the
// OpenConfig models forbid are refused with ErrSchema.
func TestValidateRefuses(t *testing.T) {
	bad := map[string]func(d *oc.Device){
		"vlan id 4095": func(d *oc.Device) { d.GetOrCreateVlan(4095) },
		"vlan key differs from its id": func(d *oc.Device) {
			d.GetOrCreateVlan(10).VlanId = ygot.Uint16(11)
		},
		"ipv4 prefix length 33": func(d *oc.Device) {
			d.GetOrCreateInterface("e1").GetOrCreateSubinterface(10).GetOrCreateIpv4().GetOrCreateAddress("10.0.0.1").PrefixLength = ygot.Uint8(33)
		},
		"not an ipv4 address": func(d *oc.Device) {
			d.GetOrCreateInterface("e1").GetOrCreateSubinterface(10).GetOrCreateIpv4().GetOrCreateAddress("10.0.0.300").PrefixLength = ygot.Uint8(24)
		},
		"access vlan 0": func(d *oc.Device) {
			d.GetOrCreateInterface("e1").GetOrCreateEthernet().GetOrCreateSwitchedVlan().AccessVlan = oc.UnionUint16(0)
		},
	}
	for name, mk := range bad {
		d := &oc.Device{}
		mk(d)
		if err := Validate(d); !errors.Is(err, ErrSchema) {
			t.Errorf("%s: Validate = %v, want ErrSchema", name, err)
		}
	}
	ok := &oc.Device{}
	ok.GetOrCreateVlan(10).Name = ygot.String("x")
	if err := Validate(ok); err != nil {
		t.Errorf("valid configuration refused: %v", err)
	}
}
