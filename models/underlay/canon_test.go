package underlay

import (
	"slices"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
)

// TestSnapshotMatchesDiff: the canonical snapshot of a device's JSON (as
// Get returns it, module-qualified or not) finds exactly the drift Diff
// finds on GoStructs.
func TestSnapshotMatchesDiff(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	target := compileAll(t, in)["sw1"]
	ts, err := SnapshotOf(target)
	if err != nil {
		t.Fatal(err)
	}
	running, _ := ygot.DeepCopy(target)
	rd := running.(*oc.Device)
	rd.GetVlan(10).Name = ygot.String("renamed")
	rd.DeleteVlan(20)
	rd.GetOrCreateVlan(999) // not Kedge's
	rd.GetInterface("eth1").GetEthernet().GetSwitchedVlan().TrunkVlans = []oc.Interface_Ethernet_SwitchedVlan_TrunkVlans_Union{oc.UnionUint16(10)}
	rd.GetInterface("eth9").GetSubinterface(10).GetIpv4().GetAddress("10.10.0.1").PrefixLength = ygot.Uint8(25)

	ops, err := Diff(rd, target, target)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range ops {
		want = append(want, o.PathString())
	}
	slices.Sort(want)
	if len(want) != 4 {
		t.Fatalf("Diff found %v", want)
	}

	for name, js := range map[string]func() ([]byte, error){
		"module-qualified": func() ([]byte, error) { return JSON(rd) },
		"plain": func() ([]byte, error) {
			s, err := ygot.EmitJSON(rd, &ygot.EmitJSONConfig{Format: ygot.RFC7951, SkipValidation: true})
			return []byte(s), err
		},
	} {
		b, err := js()
		if err != nil {
			t.Fatal(err)
		}
		rs := Snapshot{}
		if err := rs.Add(&gpb.Path{}, b); err != nil {
			t.Fatal(err)
		}
		if got := Drift(rs, ts); !slices.Equal(got, want) {
			t.Errorf("%s: drift %v, Diff %v", name, got, want)
		}
	}
	// Unchanged, no drift; one container checked alone.
	same, _ := JSON(target)
	rs := Snapshot{}
	if err := rs.Add(&gpb.Path{}, same); err != nil {
		t.Fatal(err)
	}
	if d := Drift(rs, ts); len(d) != 0 {
		t.Errorf("drift against itself: %v", d)
	}
	one := Snapshot{}
	vj, _ := ContainerJSON(rd.GetVlan(10))
	p, _ := ygot.StringToStructuredPath("/vlans/vlan[vlan-id=10]")
	if err := one.Add(p, vj); err != nil {
		t.Fatal(err)
	}
	if d := Drift(one, ts, "/vlans/vlan[vlan-id=10]"); !slices.Equal(d, []string{"/vlans/vlan[vlan-id=10]"}) {
		t.Errorf("one container: %v", d)
	}
}

// TestDiffSnapshotMatchesDiff: DiffSnapshot makes the operations Diff
// makes, and Holds sees a push applied exactly.
func TestDiffSnapshotMatchesDiff(t *testing.T) {
	v10 := VLAN{ID: 10, Name: "a", Members: []Member{{Device: "sw", Port: "e1"}},
		Subinterfaces: []Subinterface{{Device: "sw", Port: "e9"}}}
	v20 := VLAN{ID: 20, Members: []Member{{Device: "sw", Port: "e1"}}}
	old := mustCompile(t, "sw", v10, v20)
	v10b := v10
	v10b.Name, v10b.Subinterfaces = "b", nil
	want := mustCompile(t, "sw", v10b, VLAN{ID: 30, Members: []Member{{Device: "sw", Port: "e2"}}})
	have := mustCompile(t, "sw", v10, v20)
	have.GetOrCreateVlan(999)

	ops, err := Diff(have, want, old)
	if err != nil {
		t.Fatal(err)
	}
	hs, ws, os := snap(t, have), snap(t, want), snap(t, old)
	sops, err := DiffSnapshot(hs, want, ws, os)
	if err != nil {
		t.Fatal(err)
	}
	if got, exp := Paths(sops), Paths(ops); !slices.Equal(got, exp) {
		t.Errorf("DiffSnapshot %v, Diff %v", got, exp)
	}
	for i := range ops {
		if string(ops[i].Value) != string(sops[i].Value) {
			t.Errorf("%s: values differ", ops[i])
		}
	}
	if h := Holds(hs, ws, os); len(h) == 0 {
		t.Error("Holds says the old configuration holds the new target")
	}
	applyOps(t, have, sops)
	if h := Holds(snap(t, have), ws, os); len(h) != 0 {
		t.Errorf("after the ops, Holds lists %v", h)
	}
}

func snap(t *testing.T, d *oc.Device) Snapshot {
	t.Helper()
	s, err := SnapshotOf(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
