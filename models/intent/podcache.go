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

// podCache is a RouteCache's pod side: what podRoutes derives from each
// /kedge/pods entry (its routes, subject, PodRef, invalid addresses), kept
// between intents so that a commit touching one pod reads that pod and no
// other. Reading every pod on each change set was most of a pod ADD's
// intent (about 1 ms of 1,000 ADDs' 1.0-1.3 ms each, BenchmarkPodAddInto100k
// in tests/). Like the route entries, a pod is known by its identity
// (tree.Ident); Observe marks the pods the commits touched, and the next
// intent reads just those, finding each by its keys in the version it
// reads. Whenever the route cache walks everything (a commit it was not
// told of, first use), the pods are read whole again: podRoutes, the
// reference, and the cache share readPod.
type podCache struct {
	built bool // byPod, order and routes reflect the tree at the cache's seq, but for dirty
	byPod map[tree.Ident]*cachedPod
	// order is every cached pod by key, the order of a set's Pods and
	// PodsPending; routes is every pod route, kept or withheld, in set
	// order. Both are kept by merging the changed pods in (mergeOrder).
	order  []*cachedPod
	routes []podRoute
	// spareOrder and spareRoutes are the other buffers of order and
	// routes; kept and overlay are scratch buffers of one Changes, for
	// the pods' kept routes and the peers' when there are peers' to
	// merge in.
	spareOrder    []*cachedPod
	spareRoutes   []podRoute
	kept, overlay outBuf
	// dirty are the pods Observe saw touched since the last read.
	dirty map[tree.Ident]struct{}
	// reads, walks and patches count the pods read from the tree, the
	// whole reads and the reads of dirty pods alone, for the tests that
	// check a one-pod commit reads one pod and the change sets mostly
	// read pods that way.
	reads, walks, patches int
}

// cachedPod is one pod entry as podRoutes reads it.
type cachedPod struct {
	id tree.Ident
	// ref.Stated follows the pod's state status (Observe).
	ref PodRef
	// pending: no addresses or no host-ifname yet (ref.Reason says so).
	pending bool
	// hasConfig: the entry has config; a state commit then cannot make it
	// go or change its routes.
	hasConfig   bool
	routes      []route.Route // one per address that parses, in address order
	class, tier string
	invalid     []string // the reasons of the addresses that do not parse
	dropped     bool     // replaced or gone: leaves the orders at the next merge
}

// podRoute is route i of pod p.
type podRoute struct {
	p *cachedPod
	i int32
}

func (r podRoute) route() route.Route { return r.p.routes[r.i] }

// origin is the route's Origin, Stated as the pod is now.
func (p *cachedPod) origin() Origin { return Origin{Pod: p.ref.Key, Stated: p.ref.Stated} }

// subject is what the route policy looks at for the pod's route to dst.
func (p *cachedPod) subject(dst netip.Prefix) subject {
	return subject{class: p.class, tier: p.tier, pod: true, dst: dst}
}

const podPendingReason = "waiting for the pod's addresses and host-ifname"

// readPod reads one pod entry into p, reusing p's slices; full reads its
// state status too.
func readPod(in kedgetree.Kedge_Pods_Pod, full bool, p *cachedPod) {
	id, _ := in.ContainerId()
	ifname, _ := in.Ifname()
	*p = cachedPod{id: p.id, routes: p.routes[:0], invalid: p.invalid[:0], ref: PodRef{Key: PodKey{ContainerID: id, IfName: ifname}}}
	if full {
		p.ref.Stated = stated(in.State().Status())
	}
	c := in.Config()
	p.hasConfig = c.Exists()
	addrs := c.Addresses()
	dev, _ := c.HostIfname()
	if len(addrs) == 0 || dev == "" {
		p.pending, p.ref.Reason = true, podPendingReason
		return
	}
	mode, _ := c.AllowedMode()
	tier, _ := c.Tier()
	p.class, p.tier = string(mode), string(tier)
	if p.class == "" {
		p.class = ModeOverlay
	}
	if p.tier == "" {
		p.tier = accord.TierOperator
	}
	for _, v := range addrs {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			p.invalid = append(p.invalid, "pod address "+v+": "+err.Error())
			continue
		}
		a := pfx.Addr().Unmap()
		p.routes = append(p.routes, route.Route{Dst: netip.PrefixFrom(a, a.BitLen()), Device: dev, Scope: route.ScopeLink})
	}
}

// emit feeds the pod's routes to consider and, when full, its PodRef to
// the set's Pods or PodsPending and its invalid addresses to Invalid.
func (p *cachedPod) emit(full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	if p.pending {
		if full {
			set.PodsPending = append(set.PodsPending, p.ref)
		}
		return
	}
	o := p.origin()
	if full {
		for _, why := range p.invalid {
			set.Invalid = append(set.Invalid, Withheld{Reason: why, Origin: o})
		}
	}
	for _, r := range p.routes {
		consider(r, o, p.subject(r.Dst))
	}
	if full {
		set.Pods = append(set.Pods, p.ref)
	}
}

func comparePods(a, b *cachedPod) int {
	return cmp.Or(cmp.Compare(a.ref.Key.ContainerID, b.ref.Key.ContainerID), cmp.Compare(a.ref.Key.IfName, b.ref.Key.IfName))
}

// comparePodRoutes is the set order of two pod routes; two addresses of
// one pod with one route keep their address order.
func comparePodRoutes(a, b podRoute) int {
	ar, br := a.route(), b.route()
	if c := compareKeys(keyOf(ar.Dst, ar.Table), keyOf(br.Dst, br.Table)); c != 0 {
		return c
	}
	return cmp.Or(comparePods(a.p, b.p), cmp.Compare(a.i, b.i))
}

// The schema paths Observe looks for: the pods list and its entries'
// state status leaf.
var (
	podListPath   = kedgepath.Root().Kedge().Pods().PodAny().SchemaPath()
	podStatusPath = kedgepath.Root().Kedge().Pods().PodAny().State().Status().SchemaPath()
)

// observe notes one change of a pod's (below a /kedge/pods entry) of a
// commit the RouteCache observed.
func (pc *podCache) observe(state bool, ch tree.Change) {
	id := ch.In
	for !id.IsZero() && id.Schema().Path != podListPath {
		id = id.Parent()
	}
	if id.IsZero() {
		return
	}
	if p := pc.byPod[id]; state && p != nil && p.hasConfig {
		// State changes no translation of a pod with config, nor makes
		// it go: only its status matters, taken at once (as a route
		// entry's). A pod of state alone is read again.
		if ch.Node.Path == podStatusPath {
			p.ref.Stated = ch.Val.IsSet()
		}
		return
	}
	if pc.dirty == nil {
		pc.dirty = map[tree.Ident]struct{}{}
	}
	pc.dirty[id] = struct{}{}
}

// sync brings the cache to pods (/kedge/pods of the version the intent
// reads): only the dirty pods are read again when incremental, every pod
// otherwise.
func (pc *podCache) sync(pods kedgetree.Kedge_Pods, incremental bool) {
	if !incremental || !pc.built {
		pc.walk(pods)
		return
	}
	if len(pc.dirty) == 0 {
		return
	}
	pc.patches++
	var fresh, gone []*cachedPod
	var freshR, goneR []podRoute
	for id := range pc.dirty {
		if old := pc.byPod[id]; old != nil {
			old.dropped = true
			gone = append(gone, old)
			for i := range old.routes {
				goneR = append(goneR, podRoute{old, int32(i)})
			}
			delete(pc.byPod, id)
		}
		in := findPod(pods, id)
		if !in.Exists() {
			continue
		}
		p := &cachedPod{id: id}
		readPod(in, true, p)
		pc.reads++
		pc.byPod[id] = p
		fresh = append(fresh, p)
		for i := range p.routes {
			freshR = append(freshR, podRoute{p, int32(i)})
		}
	}
	if len(pc.dirty) > 4096 {
		pc.dirty = nil // a cleared map keeps its buckets
	}
	clear(pc.dirty)
	slices.SortFunc(fresh, comparePods)
	slices.SortFunc(freshR, comparePodRoutes)
	order := mergeOrder(pc.spareOrder, pc.order, fresh, gone, func(p *cachedPod) bool { return p.dropped }, comparePods)
	clear(pc.order) // the spare must not keep dropped pods alive
	pc.spareOrder, pc.order = pc.order[:0], order
	routes := mergeOrder(pc.spareRoutes, pc.routes, freshR, goneR, func(r podRoute) bool { return r.p.dropped }, comparePodRoutes)
	clear(pc.routes)
	pc.spareRoutes, pc.routes = pc.routes[:0], routes
}

// walk reads every pod again.
func (pc *podCache) walk(pods kedgetree.Kedge_Pods) {
	pc.walks++
	list := pods.Pod()
	n := list.Len()
	pc.byPod = make(map[tree.Ident]*cachedPod, n)
	slab := make([]cachedPod, n)
	order := slices.Grow(pc.spareOrder[:0], n)
	clear(pc.order)
	pc.spareOrder = pc.order[:0]
	routes := pc.spareRoutes[:0]
	clear(pc.routes)
	pc.spareRoutes = pc.routes[:0]
	i := 0
	for in := range list.All() {
		p := &slab[i]
		i++
		p.id = in.Inst().Ident()
		readPod(in, true, p)
		pc.reads++
		pc.byPod[p.id] = p
		order = append(order, p)
		for j := range p.routes {
			routes = append(routes, podRoute{p, int32(j)})
		}
	}
	slices.SortFunc(order, comparePods)
	slices.SortFunc(routes, comparePodRoutes)
	pc.order, pc.routes = order, routes
	pc.dirty = nil
	pc.built = true
}

// reset forgets every pod: the next intent reads them whole.
func (pc *podCache) reset() {
	pc.built = false
	pc.byPod, pc.order, pc.routes, pc.dirty = nil, nil, nil, nil
}

// findPod returns the pod id names in the version pods (/kedge/pods)
// belongs to, or none when it is gone.
func findPod(pods kedgetree.Kedge_Pods, id tree.Ident) kedgetree.Kedge_Pods_Pod {
	if !pods.Exists() {
		return kedgetree.Kedge_Pods_Pod{}
	}
	return findEntry(pods.Inst(), id, kedgetree.AsKedge_Pods_Pod) // observe kept only pod entries
}
