package intent

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// PodKey is the key of a /kedge/pods/pod entry.
type PodKey struct {
	ContainerID string
	IfName      string
}

// PodRef is a pod entry the routes intent covered, for its state.
type PodRef struct {
	Key PodKey
	// Reason is why a pending pod has no routes yet.
	Reason string
	// Stated: the entry already had a state status (see Origin.Stated).
	Stated bool
}

// Pod modes (leaf allowed-mode).
const (
	ModeOverlay  = "overlay"
	ModeUnderlay = "underlay"
)

// PodRoutes returns the host routes of the pods in /kedge/pods, without
// any accord applied: for each address of a pod that has a host-ifname, a
// /32 (or /128) in the main table straight out of the host end of the
// pod's veth, scope link. The CNI plugin writes the pod; the route follows.
func PodRoutes(t *tree.Tree) []route.Route {
	var out []route.Route
	k := t.Root().Sub("kedge")
	if k == nil {
		return nil
	}
	pods := k.Sub("pods")
	if pods == nil {
		return nil
	}
	var set RouteSet
	podRoutes(pods, false, &set, func(r route.Route, _ Origin, _ subject) { out = append(out, r) })
	return out
}

// podRoutes feeds each pod's host routes to consider with the pod's
// policy subject: its allowed mode as the class (overlay unless set) and
// its tier (operator unless set).
func podRoutes(pods *tree.Inst, full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	pods.Entries("pod", func(in *tree.Inst) bool {
		keys := in.Keys()
		ref := PodRef{Key: PodKey{ContainerID: keys[0].Str(), IfName: keys[1].Str()}}
		if full {
			ref.Stated = stated(in)
		}
		c := in.Sub("config")
		var addrs []tree.Value
		var dev string
		if c != nil {
			addrs, dev = c.Get("addresses").Elems(), c.Get("host-ifname").Str()
		}
		if len(addrs) == 0 || dev == "" {
			if full {
				ref.Reason = "waiting for the pod's addresses and host-ifname"
				set.PodsPending = append(set.PodsPending, ref)
			}
			return true
		}
		s := subject{class: c.Get("allowed-mode").Str(), tier: c.Get("tier").Str(), pod: true}
		if s.class == "" {
			s.class = ModeOverlay
		}
		if s.tier == "" {
			s.tier = accord.TierOperator
		}
		o := Origin{Pod: ref.Key, Stated: ref.Stated}
		for _, v := range addrs {
			p, err := netip.ParsePrefix(v.Str())
			if err != nil {
				if full {
					set.Invalid = append(set.Invalid, Withheld{Reason: "pod address " + v.Str() + ": " + err.Error(), Origin: o})
				}
				continue
			}
			a := p.Addr().Unmap()
			r := route.Route{Dst: netip.PrefixFrom(a, a.BitLen()), Device: dev, Scope: route.ScopeLink}
			s.dst = r.Dst
			consider(r, o, s)
		}
		if full {
			set.Pods = append(set.Pods, ref)
		}
		return true
	})
	// Entries runs in map order; equal trees give equal sets.
	byKey := func(a, b PodRef) int {
		return cmp.Or(cmp.Compare(a.Key.ContainerID, b.Key.ContainerID), cmp.Compare(a.Key.IfName, b.Key.IfName))
	}
	slices.SortFunc(set.Pods, byKey)
	slices.SortFunc(set.PodsPending, byKey)
}
