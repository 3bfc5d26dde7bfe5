package routes

import (
	"slices"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func vlanEntry(id string) string { return "/kedge/underlay/vlans/vlan[id=" + id + "]" }

func (r *routesRig) leaf(path string) string {
	var v string
	r.st.Read(func(tr *tree.Tree) error {
		p, _ := tree.ParsePath(path)
		if tgt, ok, _ := tr.Lookup(p); ok && tgt.Node != nil {
			v = tgt.In.Leaf(tgt.Node).String()
		}
		return nil
	})
	return v
}

func (r *routesRig) iface(name string) (route.Interface, bool) {
	i := slices.IndexFunc(r.fake.Interfaces(), func(i route.Interface) bool { return i.Name == name })
	if i < 0 {
		return route.Interface{}, false
	}
	return r.fake.Interfaces()[i], true
}

// TestUnderlayVLANInterfaces: /kedge/underlay/vlans entries with a parent
// become this node's interfaces through the route backend (a macvlan
// here, where the kernel lacks 8021q), with their state; at level 1 they
// stay as applied (monitoring kept, no changes dispatched) and a new one
// waits, frozen, until the level allows it.
func TestUnderlayVLANInterfaces(t *testing.T) {
	r := newRoutesRig(t)
	r.commit(t, store.OpUpdate, map[string]*gpb.TypedValue{
		vlanEntry("100") + "/config/id":        uval(100),
		vlanEntry("100") + "/config/parent":    str("eth0"),
		vlanEntry("100") + "/config/addresses": jsonIETF(`["192.0.2.10/24"]`),
		vlanEntry("200") + "/config/id":        uval(200),
		vlanEntry("200") + "/config/parent":    str("eth0"),
		vlanEntry("200") + "/config/ifname":    str("mon0"),
		vlanEntry("300") + "/config/id":        uval(300), // devices only
		vlanEntry("900") + "/config/id":        uval(900),
		vlanEntry("900") + "/config/parent":    str("nosuch0"),
	})
	waitUntil(t, "VLAN interfaces up", func() bool {
		return r.leaf(vlanEntry("100")+"/state/status") == "up" && r.leaf(vlanEntry("200")+"/state/status") == "up"
	})
	if i, ok := r.iface("kvl100"); !ok || i.Parent != "eth0" || i.VLANID != 100 || len(i.Addresses) != 1 || !i.Up {
		t.Fatalf("kvl100: %+v %v", i, ok)
	}
	if r.leaf(vlanEntry("100")+"/state/kind") != "macvlan" || r.leaf(vlanEntry("100")+"/state/ifname") != "kvl100" {
		t.Errorf("VLAN 100 state: kind %q ifname %q", r.leaf(vlanEntry("100")+"/state/kind"), r.leaf(vlanEntry("100")+"/state/ifname"))
	}
	if r.leaf(vlanEntry("300")+"/state/status") != "" || len(r.fake.Interfaces()) != 2 {
		t.Errorf("a VLAN without a parent got an interface: %v", r.fake.Interfaces())
	}
	waitUntil(t, "VLAN 900 failed", func() bool { return r.leaf(vlanEntry("900")+"/state/status") == "failed" })
	if e := r.leaf(vlanEntry("900") + "/state/error"); e == "" {
		t.Error("VLAN 900 failed without an error")
	}

	// Level 1: edits wait, a new VLAN is frozen, the monitoring VLAN is
	// still changed.
	r.setLevel(t, 1)
	r.commit(t, store.OpUpdate, map[string]*gpb.TypedValue{
		vlanEntry("100") + "/config/addresses":  jsonIETF(`["192.0.2.99/24"]`),
		vlanEntry("200") + "/config/monitoring": {Value: &gpb.TypedValue_BoolVal{BoolVal: true}},
		vlanEntry("200") + "/config/addresses":  jsonIETF(`["198.51.100.1/24"]`),
		vlanEntry("400") + "/config/id":         uval(400),
		vlanEntry("400") + "/config/parent":     str("eth0"),
	})
	waitUntil(t, "VLAN 400 frozen", func() bool { return r.leaf(vlanEntry("400")+"/state/status") == "frozen" })
	waitUntil(t, "monitoring VLAN changed", func() bool {
		i, _ := r.iface("mon0")
		return len(i.Addresses) == 1 && i.Addresses[0].String() == "198.51.100.1/24"
	})
	if i, _ := r.iface("kvl100"); len(i.Addresses) != 1 || i.Addresses[0].String() != "192.0.2.10/24" {
		t.Errorf("level 1 changed kvl100: %+v", i)
	}
	if _, ok := r.iface("kvl400"); ok {
		t.Error("level 1 made kvl400")
	}

	// Back to 5: everything waiting is applied.
	r.setLevel(t, 5)
	waitUntil(t, "VLAN 400 up", func() bool { return r.leaf(vlanEntry("400")+"/state/status") == "up" })
	if i, _ := r.iface("kvl100"); len(i.Addresses) != 1 || i.Addresses[0].String() != "192.0.2.99/24" {
		t.Errorf("back at 5, kvl100: %+v", i)
	}
}
