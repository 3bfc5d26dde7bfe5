package intent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

func vlanLeaves(id, parent, ifname string, addrs string, monitoring bool) []leaf {
	base := "/kedge/underlay/vlans/vlan[id=" + id + "]/config/"
	ls := []leaf{{base + "id", js(id)}}
	if parent != "" {
		ls = append(ls, leaf{base + "parent", s(parent)})
	}
	if ifname != "" {
		ls = append(ls, leaf{base + "ifname", s(ifname)})
	}
	if addrs != "" {
		ls = append(ls, leaf{base + "addresses", js(addrs)})
	}
	if monitoring {
		ls = append(ls, leaf{base + "monitoring", b(true)})
	}
	return ls
}

// applyState writes what the route state writer would after applying
// the interfaces.
func applyState(t *testing.T, tr *tree.Tree, id, parent, ifname, addrs string) {
	t.Helper()
	tx, err := tr.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	base := "/kedge/underlay/vlans/vlan[id=" + id + "]/state/"
	for _, l := range []leaf{{base + "status", s(VLANUp)}, {base + "parent", s(parent)}, {base + "ifname", s(ifname)}, {base + "addresses", js(addrs)}} {
		p, err := tree.ParsePath(l.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Update(p, l.val); err != nil {
			t.Fatalf("%s: %v", l.path, err)
		}
	}
	tx.Commit()
}

func updateConfig(t *testing.T, tr *tree.Tree, ls []leaf) {
	t.Helper()
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		p, _ := tree.ParsePath(l.path)
		if err := tx.Update(p, l.val); err != nil {
			t.Fatalf("%s: %v", l.path, err)
		}
	}
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
}

// TestUnderlayInterfaces: VLANs with a parent become this node's
// interfaces at every level; at level 1 they are frozen as applied (config
// edits and new VLANs wait) except the monitoring VLAN.
func TestUnderlayInterfaces(t *testing.T) {
	var ls []leaf
	ls = append(ls, vlanLeaves("100", "eth0", "", `["192.0.2.10/24"]`, false)...)
	ls = append(ls, vlanLeaves("200", "eth0", "mon0", "", true)...)
	ls = append(ls, vlanLeaves("300", "", "", "", false)...) // devices only
	tr := build(t, ls)
	five, _ := accord.Default(5)
	one, _ := accord.Default(1)
	ifs, refs := UnderlayInterfaces(tr, five)
	want := []route.Interface{
		{Name: "kvl100", Parent: "eth0", Kind: route.KindAuto, VLANID: 100, Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}},
		{Name: "mon0", Parent: "eth0", Kind: route.KindAuto, VLANID: 200, Up: true},
	}
	if d := cmp.Diff(want, ifs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("level 5 (-want +got):\n%s", d)
	}
	if len(refs) != 2 || refs[0].ID != 100 || refs[0].Interface != 0 || refs[1].Interface != 1 {
		t.Errorf("refs %+v", refs)
	}
	// Right after a restart at level 1 (no state): config, kept up.
	if ifs1, _ := UnderlayInterfaces(tr, one); len(ifs1) != 2 {
		t.Errorf("level 1 without state: %d interfaces", len(ifs1))
	}

	// Applied; then at level 1 config edits and a new VLAN wait.
	applyState(t, tr, "100", "eth0", "kvl100", `["192.0.2.10/24"]`)
	applyState(t, tr, "200", "eth0", "mon0", `[]`)
	updateConfig(t, tr, append(append(vlanLeaves("100", "eth1", "", `["192.0.2.99/24"]`, false),
		vlanLeaves("400", "eth0", "", "", false)...), vlanLeaves("200", "eth0", "mon0", `["198.51.100.1/24"]`, true)...))
	ifs, refs = UnderlayInterfaces(tr, one)
	got := map[uint16]route.Interface{}
	for _, r := range refs {
		if r.Interface >= 0 {
			got[r.ID] = ifs[r.Interface]
		}
	}
	if i := got[100]; i.Parent != "eth0" || len(i.Addresses) != 1 || i.Addresses[0].String() != "192.0.2.10/24" {
		t.Errorf("level 1 applied a config edit: %+v", i)
	}
	if i := got[200]; len(i.Addresses) != 1 || i.Addresses[0].String() != "198.51.100.1/24" {
		t.Errorf("level 1 froze the monitoring VLAN: %+v", i)
	}
	var frozen *VLANRef
	for i := range refs {
		if refs[i].ID == 400 {
			frozen = &refs[i]
		}
	}
	if frozen == nil || frozen.Interface != -1 || frozen.Frozen == "" {
		t.Errorf("level 1 made a new VLAN interface: %+v", frozen)
	}
	// Level 2 applies config again (only level 1 freezes the node's VLANs).
	two, _ := accord.Default(2)
	ifs, _ = UnderlayInterfaces(tr, two)
	if len(ifs) != 3 || ifs[0].Parent != "eth1" {
		t.Errorf("level 2: %+v", ifs)
	}
	_ = gpb.Encoding_JSON
}
