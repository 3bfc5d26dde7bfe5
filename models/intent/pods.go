package intent

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
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
	ModeOverlay  = string(kedgepath.PodAllowedModeOverlay)
	ModeUnderlay = string(kedgepath.PodAllowedModeUnderlay)
)

// PodRoutes returns the host routes of the pods in /kedge/pods, without
// any accord applied: for each address of a pod that has a host-ifname, a
// /32 (or /128) in the main table straight out of the host end of the
// pod's veth, scope link. The CNI plugin writes the pod; the route follows.
func PodRoutes(t *tree.Tree) []route.Route {
	var out []route.Route
	var set RouteSet
	podRoutes(kedgetree.Of(t).Kedge().Pods().Pod(), false, &set, func(r route.Route, _ Origin, _ subject) { out = append(out, r) })
	return out
}

// podRoutes feeds each pod's host routes to consider with the pod's
// policy subject: its allowed mode as the class (overlay unless set) and
// its tier (operator unless set).
func podRoutes(pods kedgetree.Kedge_Pods_PodList, full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	for in := range pods.All() {
		id, _ := in.ContainerId()
		ifname, _ := in.Ifname()
		ref := PodRef{Key: PodKey{ContainerID: id, IfName: ifname}}
		if full {
			ref.Stated = stated(in.State().Status())
		}
		c := in.Config()
		addrs := c.Addresses()
		dev, _ := c.HostIfname()
		if len(addrs) == 0 || dev == "" {
			if full {
				ref.Reason = "waiting for the pod's addresses and host-ifname"
				set.PodsPending = append(set.PodsPending, ref)
			}
			continue
		}
		mode, _ := c.AllowedMode()
		tier, _ := c.Tier()
		s := subject{class: string(mode), tier: string(tier), pod: true}
		if s.class == "" {
			s.class = ModeOverlay
		}
		if s.tier == "" {
			s.tier = accord.TierOperator
		}
		o := Origin{Pod: ref.Key, Stated: ref.Stated}
		for _, v := range addrs {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				if full {
					set.Invalid = append(set.Invalid, Withheld{Reason: "pod address " + v + ": " + err.Error(), Origin: o})
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
	}
	// Entries come in map order; equal trees give equal sets.
	byKey := func(a, b PodRef) int {
		return cmp.Or(cmp.Compare(a.Key.ContainerID, b.Key.ContainerID), cmp.Compare(a.Key.IfName, b.Key.IfName))
	}
	slices.SortFunc(set.Pods, byKey)
	slices.SortFunc(set.PodsPending, byKey)
}
