package routes

import (
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/intent"
)

// vlanVal is what the route applier last wrote to a VLAN's state.
type vlanVal struct {
	status, kind, err string
	iface             route.Interface
}

func (v vlanVal) equal(o vlanVal) bool {
	return v.status == o.status && v.kind == o.kind && v.err == o.err && v.iface.Name == o.iface.Name &&
		v.iface.Parent == o.iface.Parent && slices.Equal(v.iface.Addresses, o.iface.Addresses)
}

// vlanOps writes the state of this node's underlay VLAN interfaces: the
// interface as applied (ifname, parent, addresses: the underlay freeze at
// level 1 keeps exactly this), its kind, and up, failed (with the error),
// pending or frozen (with why). Unchanged entries are skipped.
func (a *applier) vlanOps(s intent.RouteSet, st route.Status) []store.Op {
	if a.vlans == nil {
		a.vlans = map[uint16]vlanVal{}
	}
	known := len(st.Interfaces) == len(s.Config.Interfaces)
	var out []store.Op
	seen := map[uint16]bool{}
	for _, ref := range s.VLANs {
		seen[ref.ID] = true
		var v vlanVal
		switch {
		case ref.Interface < 0:
			v = vlanVal{status: intent.VLANFrozen, err: ref.Frozen}
		case !known:
			v = vlanVal{status: intent.VLANPending, iface: s.Config.Interfaces[ref.Interface]}
		default:
			is := st.Interfaces[ref.Interface]
			v = vlanVal{status: intent.VLANUp, kind: is.Kind.String(), iface: s.Config.Interfaces[ref.Interface]}
			if is.State != route.StateInstalled {
				v.status = intent.VLANFailed
				if is.Err != nil {
					v.err = is.Err.Error()
				}
			}
		}
		if old, ok := a.vlans[ref.ID]; ok && ref.Stated && old.equal(v) {
			continue
		}
		a.vlans[ref.ID] = v
		out = append(out, vlanStateOps(ref.ID, v)...)
	}
	for id := range a.vlans {
		if !seen[id] {
			delete(a.vlans, id) // its entry is gone, or it lost its parent
		}
	}
	return out
}

func vlanStateOps(id uint16, v vlanVal) []store.Op {
	st := kedgepath.Root().Kedge().Underlay().Vlans().Vlan(id).State()
	str := func(p interface {
		store.Leaf[string]
	}, val string) store.Op {
		if val == "" {
			return store.Delete(p)
		}
		return store.Update(p, val)
	}
	ops := []store.Op{store.Update(st.Id(), id), store.Update(st.Status(), kedgepath.VlanStatus(v.status)),
		str(st.Error(), v.err), str(st.Ifname(), v.iface.Name), str(st.Parent(), v.iface.Parent)}
	if v.kind == "" {
		ops = append(ops, store.Delete(st.Kind()))
	} else {
		ops = append(ops, store.Update(st.Kind(), kedgepath.VlanKind(v.kind)))
	}
	if len(v.iface.Addresses) == 0 {
		ops = append(ops, store.Delete(st.Addresses()))
	} else {
		as := make([]string, len(v.iface.Addresses))
		for i, p := range v.iface.Addresses {
			as[i] = p.String()
		}
		ops = append(ops, store.Update(st.Addresses(), as))
	}
	return ops
}
