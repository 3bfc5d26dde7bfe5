package underlay

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/guildhouse-co/kedge/gen/oc"
)

func mustCompile(t *testing.T, dev string, vs ...VLAN) *oc.Device {
	t.Helper()
	d, err := Compile(dev, vs)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// applyOps applies ops the way a gNMI target does (delete the path, then
// set the JSON there), with ygot's own tree functions.
func applyOps(t *testing.T, d *oc.Device, ops []Op) {
	t.Helper()
	s, err := oc.Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if err := ytypes.DeleteNode(s.RootSchema(), d, o.Path); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		if o.Kind == OpReplace {
			v := &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: o.Value}}
			if err := ytypes.SetNode(s.RootSchema(), d, o.Path, v, &ytypes.InitMissingElements{}); err != nil {
				t.Fatalf("%s: %v", o, err)
			}
		}
	}
}

func TestDiff(t *testing.T) {
	v10 := VLAN{ID: 10, Name: "a", Members: []Member{{Device: "sw", Port: "e1"}},
		Subinterfaces: []Subinterface{{Device: "sw", Port: "e9", Addresses: []netip.Prefix{pfx("10.0.0.1/24")}}}}
	v20 := VLAN{ID: 20, Members: []Member{{Device: "sw", Port: "e1"}}}
	old := mustCompile(t, "sw", v10, v20)
	v10b := v10
	v10b.Name = "b"
	v10b.Subinterfaces = nil
	want := mustCompile(t, "sw", v10b)

	// The device also holds configuration Kedge never applied.
	have := mustCompile(t, "sw", v10, v20)
	have.GetOrCreateVlan(999).Name = ygot.String("theirs")
	have.GetOrCreateInterface("mgmt0").GetOrCreateSubinterface(0)

	ops, err := Diff(have, want, old)
	if err != nil {
		t.Fatal(err)
	}
	got := Paths(ops)
	wantPaths := []string{
		"delete /interfaces/interface[name=e9]/subinterfaces/subinterface[index=10]",
		"delete /vlans/vlan[vlan-id=20]",
		"replace /interfaces/interface[name=e1]/ethernet/switched-vlan",
		"replace /vlans/vlan[vlan-id=10]",
	}
	if d := cmp.Diff(wantPaths, got); d != "" {
		t.Errorf("ops (-want +got):\n%s", d)
	}
	applyOps(t, have, ops)
	if again, _ := Diff(have, want, old); len(again) != 0 {
		t.Errorf("not converged after applying the ops: %v", Paths(again))
	}
	if have.Vlan[999] == nil || have.Interface["mgmt0"] == nil {
		t.Error("configuration Kedge never applied was touched")
	}
	// A replace value is module-qualified RFC 7951 JSON.
	for _, o := range ops {
		if strings.Contains(o.PathString(), "switched-vlan") && !strings.Contains(string(o.Value), `config":{"interface-mode":"TRUNK"`) {
			t.Errorf("switched-vlan value %s", o.Value)
		}
	}
	sub, err := ContainerJSON(old.Interface["e9"].Subinterface[10])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sub), `"openconfig-if-ip:ipv4"`) || !strings.Contains(string(sub), `"openconfig-vlan:vlan"`) {
		t.Errorf("subinterface JSON lacks module names: %s", sub)
	}
}

// TestDiffRoundTrip: a configuration read back from JSON (as a device
// returns it) diffs equal to the one it was rendered from.
func TestDiffRoundTrip(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	for name, cfg := range compileAll(t, in) {
		js, err := JSON(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back := &oc.Device{}
		if err := oc.Unmarshal(js, back); err != nil {
			t.Fatal(err)
		}
		if ops, err := Diff(back, cfg); err != nil || len(ops) != 0 {
			t.Errorf("%s: round trip diff %v %v", name, Paths(ops), err)
		}
		if ops, _ := Diff(&oc.Device{}, cfg); len(ops) == 0 {
			t.Errorf("%s: empty device needs no ops", name)
		}
	}
}

func TestSetRequest(t *testing.T) {
	ops := []Op{{Kind: OpDelete, Path: vlanPath(20)}, {Kind: OpReplace, Path: vlanPath(10), Value: []byte(`{}`)}}
	req := SetRequest(ops)
	if len(req.Delete) != 1 || len(req.Replace) != 1 || len(req.Update) != 0 || string(req.Replace[0].GetVal().GetJsonIetfVal()) != `{}` {
		t.Errorf("set request %v", req)
	}
}

func TestOwnedAndProject(t *testing.T) {
	v10 := VLAN{ID: 10, Members: []Member{{Device: "sw", Port: "e1"}},
		Subinterfaces: []Subinterface{{Device: "sw", Port: "e9", Addresses: []netip.Prefix{pfx("10.0.0.1/24")}}}}
	d := mustCompile(t, "sw", v10, VLAN{ID: 20, Members: []Member{{Device: "sw", Port: "e2"}}})
	p := func(s string) *gpb.Path {
		pp, err := ygot.StringToStructuredPath(s)
		if err != nil {
			t.Fatal(err)
		}
		return pp
	}
	for _, c := range []struct {
		in, want string
		all      bool
	}{
		{"/vlans/vlan[vlan-id=10]/config/name", "/vlans/vlan[vlan-id=10]", false},
		{"/vlans/vlan[vlan-id=10]", "/vlans/vlan[vlan-id=10]", false},
		{"/vlans", "", true},
		{"/interfaces/interface[name=e1]/ethernet/switched-vlan/config/trunk-vlans", "/interfaces/interface[name=e1]/ethernet/switched-vlan", false},
		{"/interfaces/interface[name=e9]/subinterfaces/subinterface[index=10]/ipv4/addresses/address[ip=10.0.0.1]/config/prefix-length",
			"/interfaces/interface[name=e9]/subinterfaces/subinterface[index=10]", false},
		{"/interfaces/interface[name=e1]/config/mtu", "", false}, // not Kedge's
		{"/interfaces/interface[name=e1]", "", true},             // a whole interface: look at everything
		{"/system/config/hostname", "", false},
	} {
		got, all := Owned(p(c.in))
		gs := ""
		if got != nil {
			gs, _ = ygot.PathToString(got)
		}
		if gs != c.want || all != c.all {
			t.Errorf("Owned(%s) = %q %v, want %q %v", c.in, gs, all, c.want, c.all)
		}
	}
	pr := Project(d, []*gpb.Path{p("/vlans/vlan[vlan-id=10]"), p("/interfaces/interface[name=e9]/subinterfaces/subinterface[index=10]"),
		p("/vlans/vlan[vlan-id=99]")})
	if len(pr.Vlan) != 1 || pr.Vlan[10] == nil || pr.GetInterface("e9").GetSubinterface(10) == nil || pr.GetInterface("e1") != nil {
		t.Errorf("projection %+v", pr)
	}
	// A projection diffs against the same projection of another config.
	ops, err := Diff(Project(d, []*gpb.Path{p("/vlans/vlan[vlan-id=20]")}), Project(d, []*gpb.Path{p("/vlans/vlan[vlan-id=20]")}))
	if err != nil || len(ops) != 0 {
		t.Errorf("diff of equal projections: %v %v", Paths(ops), err)
	}
}
