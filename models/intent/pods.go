package intent

import (
	"cmp"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
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
// its tier (operator unless set). It reads every pod (the reference a
// RouteCache's pods, podcache.go, are checked against).
func podRoutes(pods kedgetree.Kedge_Pods_PodList, full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	var p cachedPod
	for in := range pods.All() {
		readPod(in, full, &p)
		p.emit(full, set, consider)
	}
	// Entries come in map order; equal trees give equal sets.
	byKey := func(a, b PodRef) int {
		return cmp.Or(cmp.Compare(a.Key.ContainerID, b.Key.ContainerID), cmp.Compare(a.Key.IfName, b.Key.IfName))
	}
	slices.SortFunc(set.Pods, byKey)
	slices.SortFunc(set.PodsPending, byKey)
}
