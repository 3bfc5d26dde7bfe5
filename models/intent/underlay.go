package intent

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// VLANRef is one /kedge/underlay/vlans entry that asks for an interface on
// this node (it has a parent): Interface is its index in
// Config.Interfaces, or -1 when the posture level holds it back (Frozen
// says why).
type VLANRef struct {
	ID        uint16
	Interface int
	Frozen    string
	Stated    bool // the entry already had state when the intent was read
}

// VLAN interface statuses (leaf vlan/state/status) the state writer uses.
const (
	VLANPending = string(kedgepath.VlanStatusPending)
	VLANUp      = string(kedgepath.VlanStatusUp)
	VLANFailed  = string(kedgepath.VlanStatusFailed)
	VLANFrozen  = string(kedgepath.VlanStatusFrozen)
)

// vlanIfPrefix makes a VLAN's interface name when config names none:
// "kvl" and the id, at most 7 bytes, far below the kernel's 15.
const vlanIfPrefix = "kvl"

// UnderlayInterfaces translates the VLANs of /kedge/underlay/vlans that
// have a parent into this node's interfaces (an 802.1Q VLAN where the
// kernel has 8021q, else a macvlan on the parent; up, with the VLAN's
// addresses), sorted by VLAN id.
//
// At a level whose accord freezes the underlay (level 1: "VLAN interfaces
// maintained for monitoring but no changes dispatched") each interface is
// kept as its state says it was applied: config edits wait, and a VLAN
// not applied yet is not created (its ref says frozen), except the
// monitoring VLAN, which is up at every level. State is not persisted, so
// right after a restart no VLAN has any: then config is applied as it
// stands, which keeps the interfaces up rather than tearing them down.
func UnderlayInterfaces(t *tree.Tree, a accord.Accord) ([]route.Interface, []VLANRef) {
	vs := kedgetree.Of(t).Kedge().Underlay().Vlans()
	if !vs.Exists() {
		return nil, nil
	}
	type entry struct {
		id     uint16
		cfg    *route.Interface
		state  *route.Interface
		mon    bool
		stated bool
	}
	var es []entry
	anyState := false
	for e := range vs.Vlan().All() {
		en := entry{}
		en.id, _ = e.Id()
		if c := e.Config(); c.Exists() {
			parent, _ := c.Parent()
			ifname, _ := c.Ifname()
			en.cfg = vlanInterface(en.id, parent, ifname, c.Addresses())
			en.mon, _ = c.Monitoring()
		}
		if s := e.State(); s.Exists() {
			st, ok := s.Status()
			en.stated = ok
			if st == kedgepath.VlanStatusUp || st == kedgepath.VlanStatusFailed {
				parent, _ := s.Parent()
				ifname, _ := s.Ifname()
				en.state = vlanInterface(en.id, parent, ifname, s.Addresses())
				anyState = true
			}
		}
		if en.cfg != nil || en.state != nil {
			es = append(es, en)
		}
	}
	slices.SortFunc(es, func(x, y entry) int { return cmp.Compare(x.id, y.id) })
	frozen := frozenUnderlay(a) && anyState
	var ifs []route.Interface
	var refs []VLANRef
	for _, en := range es {
		want, why := en.cfg, ""
		if frozen && !en.mon {
			want = en.state
			if want == nil {
				why = "posture level " + strconv.Itoa(int(a.Level)) + ": the underlay is frozen; the interface is made when the level allows changes"
			}
		}
		if want == nil && why == "" {
			continue // no parent: the VLAN is on the devices only
		}
		ref := VLANRef{ID: en.id, Interface: -1, Frozen: why, Stated: en.stated}
		if want != nil {
			ref.Interface = len(ifs)
			ifs = append(ifs, *want)
		}
		refs = append(refs, ref)
	}
	return ifs, refs
}

// frozenUnderlay is models/underlay.Frozen (repeated here: that package
// links the OpenConfig bindings, this one need not).
func frozenUnderlay(a accord.Accord) bool {
	return a.CompilerFrozen && len(a.UnderlayMutationTiers) == 0
}

// vlanInterface makes a VLAN's interface from its config or state (nil
// without a parent).
func vlanInterface(id uint16, parent, ifname string, addrs []string) *route.Interface {
	if parent == "" {
		return nil
	}
	i := &route.Interface{Name: ifname, Parent: parent, Kind: route.KindAuto, VLANID: id, Up: true}
	if i.Name == "" {
		i.Name = vlanIfPrefix + strconv.Itoa(int(id))
	}
	for _, v := range addrs {
		if p, err := netip.ParsePrefix(v); err == nil {
			i.Addresses = append(i.Addresses, p)
		}
	}
	return i
}
