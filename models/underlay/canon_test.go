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
