package underlay

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ids(vs []VLAN) []uint16 {
	out := []uint16{}
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func TestCapture(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	exec := map[string]Executed{}

	// Everything, everywhere: each device gets the VLANs placed on it.
	cs, err := Capture(in, exec, Proposal{ID: "all", Tier: "master"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Device != "sw1" || cs[1].Device != "sw2" {
		t.Fatalf("changes %+v", cs)
	}
	if got := ids(cs[0].Set); !slices.Equal(got, []uint16{10, 20, 30}) {
		t.Errorf("sw1 sets %v", got)
	}
	if got := ids(cs[1].Set); !slices.Equal(got, []uint16{10, 20}) {
		t.Errorf("sw2 sets %v", got)
	}
	for _, c := range cs {
		exec[c.Device] = exec[c.Device].Apply(c)
		for _, v := range exec[c.Device] {
			for _, m := range v.Members {
				if m.Device != c.Device {
					t.Errorf("%s executed intent holds %s's member %v", c.Device, m.Device, m)
				}
			}
		}
	}

	// Scoped: one VLAN on one device, and a later intent edit does not
	// ride along with a capture made before it.
	in2 := in
	in2.VLANs = slices.Clone(in.VLANs)
	in2.VLANs[1].Name = "servers-renamed" // VLAN 20
	cs, err = Capture(in2, exec, Proposal{ID: "one", Devices: []string{"sw2"}, VLANs: []uint16{20}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Device != "sw2" || !slices.Equal(ids(cs[0].Set), []uint16{20}) || cs[0].Set[0].Name != "servers-renamed" {
		t.Fatalf("scoped change %+v", cs)
	}
	in3 := in2
	in3.VLANs = slices.Clone(in2.VLANs)
	in3.VLANs[0].Name = "edited-after" // VLAN 10, after the capture
	after := exec["sw2"].Apply(cs[0])
	if v, _ := findVLAN(after, 10); v.Name != "users" {
		t.Errorf("VLAN 10 on sw2 became %q: an edit made after the capture rode along", v.Name)
	}

	// A VLAN gone from the intent is removed where it was executed.
	in4 := in
	in4.VLANs = slices.DeleteFunc(slices.Clone(in.VLANs), func(v VLAN) bool { return v.ID == 20 })
	cs, err = Capture(in4, exec, Proposal{ID: "rm", VLANs: []uint16{20}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !slices.Equal(c.Remove, []uint16{20}) || len(c.Set) != 0 {
			t.Errorf("%s: %+v, want VLAN 20 removed", c.Device, c)
		}
		target, err := exec[c.Device].Apply(c).Target(c.Device)
		if err != nil {
			t.Fatal(err)
		}
		if target.Vlan[20] != nil {
			t.Errorf("%s target still has VLAN 20", c.Device)
		}
	}
	// Unscoped, the removal is found too.
	cs, _ = Capture(in4, exec, Proposal{ID: "rm-all"})
	if !slices.Contains(cs[0].Remove, 20) {
		t.Errorf("unscoped capture does not remove VLAN 20: %+v", cs[0])
	}
}

func findVLAN(vs []VLAN, id uint16) (VLAN, bool) {
	for _, v := range vs {
		if v.ID == id {
			return v, true
		}
	}
	return VLAN{}, false
}

func TestCaptureRefuses(t *testing.T) {
	in, _ := FromTree(treeWith(t, sampleDoc))
	if _, err := Capture(in, nil, Proposal{Devices: []string{"sw9"}}); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := Capture(in, nil, Proposal{VLANs: []uint16{99}}); !errors.Is(err, ErrUnknownVLAN) {
		t.Errorf("unknown VLAN: %v", err)
	}
	bad := in
	bad.VLANs = append(slices.Clone(in.VLANs), VLAN{ID: 50, Members: []Member{{Device: "sw1", Port: "eth2", Untagged: true}}})
	if _, err := Capture(bad, nil, Proposal{}); !errors.Is(err, ErrConflict) {
		t.Errorf("port eth2 untagged in 10 and 50: %v", err)
	}
}

func TestExecutedApply(t *testing.T) {
	e := Executed{{ID: 10, Name: "a"}, {ID: 30}}
	got := e.Apply(Change{Set: []VLAN{{ID: 20}, {ID: 10, Name: "b"}}, Remove: []uint16{30}})
	want := Executed{{ID: 10, Name: "b"}, {ID: 20}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if e[0].Name != "a" || len(e) != 2 {
		t.Errorf("Apply modified its receiver: %+v", e)
	}
}
