package server

import (
	"slices"
	"strconv"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
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
func (a *routeApplier) vlanOps(s intent.RouteSet, st route.Status) []store.Op {
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
	base := []*gpb.PathElem{{Name: "kedge"}, {Name: "underlay"}, {Name: "vlans"},
		{Name: "vlan", Key: map[string]string{"id": strconv.Itoa(int(id))}}, {Name: "state"}}
	at := func(leaf string) []*gpb.PathElem {
		return append(slices.Clone(base), &gpb.PathElem{Name: leaf})
	}
	str := func(leaf, val string) store.Op {
		if val == "" {
			return store.Op{Kind: store.OpDelete, Path: at(leaf)}
		}
		return store.Op{Kind: store.OpUpdate, Path: at(leaf), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: val}}}
	}
	ops := []store.Op{
		{Kind: store.OpUpdate, Path: at("id"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(id)}}},
		str("status", v.status), str("kind", v.kind), str("error", v.err),
		str("ifname", v.iface.Name), str("parent", v.iface.Parent),
	}
	if len(v.iface.Addresses) == 0 {
		ops = append(ops, store.Op{Kind: store.OpDelete, Path: at("addresses")})
	} else {
		el := make([]*gpb.TypedValue, len(v.iface.Addresses))
		for i, p := range v.iface.Addresses {
			el[i] = &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: p.String()}}
		}
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: at("addresses"),
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: el}}}})
	}
	return ops
}
