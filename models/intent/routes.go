package intent

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Origin names the tree entry a route comes from: a /kedge/routes entry
// (Prefix and Table, the list keys as the tree holds them) or, when
// Pod.ContainerID is set, one address of a /kedge/pods entry.
type Origin struct {
	Prefix string
	Table  uint32
	Pod    PodKey
	// Peer, when set, names the mesh peer an overlay route leads to: the
	// route has no /kedge/routes entry of its own.
	Peer string
	// AFT, when its Kind is set, names the gRIBI entry (/kedge/aft) the
	// route comes from.
	AFT AFTKey
	// Stated is whether the entry already had a state status when the
	// intent was computed; a state writer that skips unchanged entries
	// must still write one that lost its state (deleted and re-created).
	Stated bool
}

// IsPod reports whether the route is a pod's host route.
func (o Origin) IsPod() bool { return o.Pod.ContainerID != "" }

// IsOverlay reports whether the route leads to a mesh peer.
func (o Origin) IsOverlay() bool { return o.Peer != "" }

// IsAFT reports whether the route is a gRIBI entry's.
func (o Origin) IsAFT() bool { return o.AFT.Kind != 0 }

// Withheld is an entry of the tree's config that the accord keeps out of
// the kernel (or, in RouteSet.Invalid, that cannot become a route), with
// the reason shown in its state.
type Withheld struct {
	Dst    netip.Prefix
	Table  uint32
	Reason string
	Origin Origin
}

// RouteSet is the routes intent: what to install, where each installed
// route comes from, and what is withheld or invalid.
type RouteSet struct {
	Config route.Config
	// Origins[i] is the tree entry of Config.Routes[i].
	Origins  []Origin
	Withheld []Withheld
	// Invalid entries could not be translated (bad prefix or next hop);
	// they are reported as failed and the rest of the set still applies.
	Invalid []Withheld
	// Pods are the pod entries the set covers, for their state; pods that
	// lack addresses or a host interface are in PodsPending instead.
	Pods        []PodRef
	PodsPending []PodRef
	// AFT is the status of the gRIBI entries the backend's outcome does
	// not give (see AFTState); Seq is the tree sequence the intent was
	// computed at (0 when unknown: a posture step's target intent).
	AFT []AFTState
	Seq uint64
	// HasAFT: /kedge/aft holds entries (the route state writer then
	// reports how far it programmed them).
	HasAFT bool
	// VLANs are the underlay VLANs with an interface on this node
	// (Config.Interfaces), for their state.
	VLANs []VLANRef
	// Delta, when set, makes this set a change to the set the same
	// RouteCache returned before (RouteCache.Changes): Config.Routes and
	// Origins are empty, Withheld and Invalid hold only the /kedge/routes
	// entries that changed (and every pod's), and the rest is whole.
	Delta *RouteDelta
	// Next, when set, returns the next part of a bulk change set: Changes
	// reads at most RouteCache.Chunk changed entries at a time, so the
	// first routes are programmed while the rest are read. The parts, in
	// order, make up the whole change; each is a change to the set the
	// parts before it made (a part may also come whole, Delta nil, when
	// the change cannot go on as parts). It uses the cache: call it while
	// its owner makes no other use of it, and not after (the parts not
	// read then stay in the cache's next Changes).
	Next func() (RouteSet, error)
}

// quartermasterKind marks the endpoints of the Quartermaster service
// (accord.ServiceQuartermaster), besides their declared kind.
const quartermasterKind = "quartermaster"

type endpoint struct {
	kind   string
	prefix netip.Prefix
}

// subject is what the route policy looks at: the route's class (for a pod,
// its allowed mode: overlay or underlay), its tier and its destination.
type subject struct {
	class, tier string
	pod         bool
	dst         netip.Prefix
}

// Routes translates /kedge/routes and the host routes of /kedge/pods (see
// PodRoutes) under the accord's route policy (the seed's CNI table):
//
//   - full: every route;
//   - withhold-underlay-below-master: underlay routes, and the routes of
//     pods in underlay mode, whose tier is below master (no tier on a
//     route means operator) are withheld; overlay ones are kept;
//   - critical-only: only management and incident routes, and routes to a
//     configured service endpoint (Quartermaster, SPIRE, Prometheus,
//     incident targets);
//   - monitoring-only: never an overlay route (nor a pod route in overlay
//     mode); otherwise only monitoring and incident routes and routes to
//     monitoring or incident endpoints.
//
// Routes to an endpoint of the Quartermaster service stay at every level
// (except overlay ones at monitoring-only): the notary flushes every
// record to it at level 1.
//
// A route "to" an endpoint has a destination overlapping the endpoint's
// prefix, but a default route (/0) never counts: it reaches everything,
// and keeping it would keep all traffic.
//
// An unknown policy withholds everything but incident routes: failing
// closed is the safe reading of a policy this code does not know.
//
// Entries that cannot be translated go to Invalid rather than failing the
// whole intent, so one bad entry never keeps the rest out of the kernel;
// the error result is for the reconciler's and posture step's intent
// signatures and is nil.
func Routes(t *tree.Tree, a accord.Accord) (RouteSet, error) { return routes(t, a, true, nil) }

// RouteConfig is Routes without the withheld and state bookkeeping, for a
// posture step or reconciler that only needs the backend's Config.
func RouteConfig(t *tree.Tree, a accord.Accord) (route.Config, error) {
	s, err := routes(t, a, false, nil)
	return s.Config, err
}

func routes(t *tree.Tree, a accord.Accord, full bool, cache *RouteCache) (RouteSet, error) {
	var set RouteSet
	k := kedgetree.Of(t).Kedge()
	if !k.Exists() {
		if cache != nil {
			cache.pods.reset()
		}
		return set, nil
	}
	rt := k.Routes()
	eps := endpoints(rt)
	n := rt.Route().Len()
	if a := k.Aft(); a.Exists() {
		n += a.Ipv4Entries().Ipv4Entry().Len() + a.Ipv6Entries().Ipv6Entry().Len()
	}
	// Kept routes go straight into the Config (and their origins beside
	// them) and are sorted in place afterwards: at 100,000 routes a
	// separate working slice is 17 MB more to allocate and copy.
	var origins []Origin
	if cache != nil {
		set.Config.Routes, origins = cache.out.take(n)
	} else {
		set.Config.Routes, origins = make([]route.Route, 0, n), make([]Origin, 0, n)
	}
	reasons := withholdReasons{prefix: "posture level " + strconv.Itoa(int(a.Level)) + " (" + a.RoutePolicy + "): "}
	// gRIBI entries lose to every other route with their prefix and
	// table (aft.go), so the other routes' keys are noted, kept or not.
	var taken map[route.Key]string
	if hasAFTRoutes(k.Aft()) {
		taken = map[route.Key]string{}
	}
	consider := func(r route.Route, o Origin, s subject) {
		if taken != nil && !o.IsAFT() {
			table := r.Table
			if table == 0 {
				table = aftTable
			}
			// Of several, the reason names the first by name: entries
			// come in no stable order.
			k, name := route.Key{Table: table, Dst: r.Dst}, originName(o)
			if prev, dup := taken[k]; !dup || name < prev {
				taken[k] = name
			}
		}
		if ok, why := keepRoute(a, s, eps); ok {
			set.Config.Routes = append(set.Config.Routes, r)
			origins = append(origins, o)
		} else if full {
			set.Withheld = append(set.Withheld, Withheld{Dst: r.Dst, Table: r.Table, Reason: reasons.get(why), Origin: o})
		}
	}
	if cache != nil {
		cache.walk(rt, full, &set, consider)
	} else {
		for in := range rt.Route().All() {
			c := in.Config()
			if !c.Exists() {
				continue
			}
			e := translate(c)
			o := e.origin()
			if full {
				o.Stated = stated(in.State().Status())
			}
			if e.err != nil {
				if full {
					set.Invalid = append(set.Invalid, Withheld{Dst: e.rt.dst, Table: o.Table, Reason: e.err.Error(), Origin: o})
				}
				continue
			}
			consider(e.route(), o, e.subject())
		}
	}
	// With a cache, the routes so far came out in order; only the pods'
	// and overlay routes after them need sorting, then a merge.
	sorted := 0
	if cache != nil {
		sorted = len(set.Config.Routes)
	}
	if cache != nil {
		cache.pods.sync(k.Pods(), cache.incremental)
		for _, p := range cache.pods.order {
			p.emit(full, &set, consider)
		}
	} else {
		podRoutes(k.Pods().Pod(), full, &set, consider)
	}
	overlayRoutes(k.Mesh(), consider)
	// gRIBI's routes come last; with a cache they come in order too.
	mid := len(set.Config.Routes)
	var ac *aftCache
	incremental := false
	if cache != nil {
		ac, incremental = &cache.aft, cache.incremental
	}
	aftSorted := aftRoutes(k.Aft(), full, &set, taken, consider, ac, incremental)
	end := len(set.Config.Routes)
	if !aftSorted {
		mid = end
	}
	// Entries runs in map order; sort so equal trees give equal Configs.
	rs, ors := set.Config.Routes[sorted:mid], origins[sorted:mid]
	order := sortOrder(len(rs), func(i int) (netip.Prefix, uint32) { return rs[i].Dst, rs[i].Table },
		func(i, j int) int { return compareOrigin(ors[i], ors[j]) })
	permute(order, func(i, j int) {
		rs[i], rs[j] = rs[j], rs[i]
		ors[i], ors[j] = ors[j], ors[i]
	})
	if cache != nil {
		cache.out.keep(set.Config.Routes, origins)
	}
	// Merge the sorted runs: [0, sorted) (the cache's routes), [sorted,
	// mid) (pods, overlay), [mid, end) (gRIBI's, when they came in order).
	outR, outO := set.Config.Routes[:mid], origins[:mid]
	if sorted > 0 && mid > sorted {
		var into outBuf
		if cache != nil {
			into = cache.merged
		}
		outR, outO = mergeRuns(outR[:sorted], outO[:sorted], outR[sorted:], outO[sorted:], into)
		if cache != nil {
			cache.merged.keep(outR, outO)
		}
	}
	if end > mid {
		aR, aO := set.Config.Routes[mid:end], origins[mid:end]
		if len(outR) == 0 {
			outR, outO = aR, aO
		} else {
			var into outBuf
			if cache != nil {
				into = cache.merged2
			}
			outR, outO = mergeRuns(outR, outO, aR, aO, into)
			if cache != nil {
				cache.merged2.keep(outR, outO)
			}
		}
	}
	set.Config.Routes, origins = outR, outO
	if full {
		set.Origins = origins
	}
	set.Withheld = sortWithheld(set.Withheld)
	set.Invalid = sortWithheld(set.Invalid)
	set.Config.Interfaces, set.VLANs = UnderlayInterfaces(t, a)
	return set, nil
}

// endpoints reads the configured service endpoints the route policy
// looks at.
func endpoints(rt kedgetree.Kedge_Routes) []endpoint {
	var eps []endpoint
	for in := range rt.Endpoints().Endpoint().All() {
		c := in.Config()
		pfx, _ := c.Prefix()
		if p, err := netip.ParsePrefix(pfx); err == nil {
			kind, _ := c.Kind()
			eps = append(eps, endpoint{kind: string(kind), prefix: p.Masked()})
			if svc, _ := c.Service(); svc == accord.ServiceQuartermaster {
				eps = append(eps, endpoint{kind: quartermasterKind, prefix: p.Masked()})
			}
		}
	}
	return eps
}

// withholdReasons builds each distinct withhold reason once: at level 1
// nearly every one of 100,000 routes shares one of a few reasons.
type withholdReasons struct {
	prefix string
	m      map[string]string
}

func (w *withholdReasons) get(why string) string {
	if r, ok := w.m[why]; ok {
		return r
	}
	if w.m == nil {
		w.m = map[string]string{}
	}
	r := w.prefix + why
	w.m[why] = r
	return r
}

// translate reads one route entry's config into its route, origin (the
// list keys are leafrefs to these config leaves: the same values, read
// without allocating the key slice) and policy subject. The typed readers
// resolve their schema nodes once, so this costs what reading with cached
// nodes did (yang/treegen's BenchmarkReadRoutes100k compares the two).
func translate(c kedgetree.Kedge_Routes_Route_Config) translated {
	r, err := routeOf(c)
	prefix, _ := c.Prefix()
	table, _ := c.Table()
	class, _ := c.Class()
	tier, _ := c.Tier()
	t := translated{rt: compact(r, table), prefix: prefix, class: string(class), tier: string(tier), err: err}
	if t.tier == "" {
		t.tier = accord.TierOperator
	}
	return t
}

func routeOf(c kedgetree.Kedge_Routes_Route_Config) (route.Route, error) {
	pfx, _ := c.Prefix()
	dst, err := netip.ParsePrefix(pfx)
	if err != nil {
		return route.Route{}, fmt.Errorf("parse prefix %q: %w", pfx, err)
	}
	dev, _ := c.Device()
	table, _ := c.Table()
	metric, _ := c.Metric()
	r := route.Route{Dst: dst.Masked(), Device: dev, Table: table, Metric: metric}
	if nh, _ := c.NextHop(); nh != "" {
		if r.Gateway, err = netip.ParseAddr(nh); err != nil {
			return r, fmt.Errorf("parse next-hop %q: %w", nh, err)
		}
	}
	return r, nil
}

// sortKey is a route's (table, destination) as integers, so sorting
// 100,000 routes compares and moves small pointer-free values.
type sortKey struct {
	table  uint32
	v6     bool
	bits   int16
	hi, lo uint64
	idx    int32
}

// sortOrder returns the indexes 0..n-1 ordered by table, then address
// (IPv4 before IPv6), then prefix length, then tie.
func sortOrder(n int, at func(int) (netip.Prefix, uint32), tie func(i, j int) int) []int32 {
	var b sortBuf
	return b.order(n, at, tie)
}

// sortBuf holds sortOrder's buffers for a caller that sorts again and
// again (the side routes of every change set): what order returns is
// valid until its next call.
type sortBuf struct {
	keys []sortKey
	out  []int32
}

func (b *sortBuf) order(n int, at func(int) (netip.Prefix, uint32), tie func(i, j int) int) []int32 {
	keys := slices.Grow(b.keys[:0], n)[:n]
	for i := range keys {
		p, table := at(i)
		keys[i] = keyOf(p, table)
		keys[i].idx = int32(i)
	}
	slices.SortFunc(keys, func(x, y sortKey) int {
		if c := compareKeys(x, y); c != 0 {
			return c
		}
		return tie(int(x.idx), int(y.idx)) // rare: two entries with one key
	})
	out := slices.Grow(b.out[:0], n)[:n]
	for i, k := range keys {
		out[i] = k.idx
	}
	b.keys, b.out = keys, out
	return out
}

func keyOf(p netip.Prefix, table uint32) sortKey {
	if table == 0 {
		// Table 0 is the main table (route.Route): sort it as the kernel
		// keys it, so the backend's fast path finds the Config in order.
		table = 254
	}
	a := p.Addr().As16()
	return sortKey{table: table, v6: p.Addr().Is6(), bits: int16(p.Bits()),
		hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:])}
}

// compareKeys orders by table, then address (IPv4 before IPv6), then
// prefix length; idx is not compared.
func compareKeys(x, y sortKey) int {
	switch {
	case x.table != y.table:
		return cmp.Compare(x.table, y.table)
	case x.v6 != y.v6:
		if x.v6 {
			return 1
		}
		return -1
	case x.hi != y.hi:
		return cmp.Compare(x.hi, y.hi)
	case x.lo != y.lo:
		return cmp.Compare(x.lo, y.lo)
	}
	return cmp.Compare(x.bits, y.bits)
}

// compareRoutes is the order of a RouteSet's routes.
func compareRoutes(a route.Route, ao Origin, b route.Route, bo Origin) int {
	if c := compareKeys(keyOf(a.Dst, a.Table), keyOf(b.Dst, b.Table)); c != 0 {
		return c
	}
	return compareOrigin(ao, bo)
}

// mergeRuns merges two sorted runs of routes and their origins into new
// slices (from into).
func mergeRuns(aR []route.Route, aO []Origin, bR []route.Route, bO []Origin, into outBuf) ([]route.Route, []Origin) {
	outR, outO := into.take(len(aR) + len(bR))
	i, j := 0, 0
	for i < len(aR) && j < len(bR) {
		if compareRoutes(bR[j], bO[j], aR[i], aO[i]) < 0 {
			outR, outO = append(outR, bR[j]), append(outO, bO[j])
			j++
		} else {
			outR, outO = append(outR, aR[i]), append(outO, aO[i])
			i++
		}
	}
	outR, outO = append(outR, aR[i:]...), append(outO, aO[i:]...)
	outR, outO = append(outR, bR[j:]...), append(outO, bO[j:]...)
	return outR, outO
}

// outBuf is a pair of output slices a RouteCache reuses between intents.
type outBuf struct {
	routes  []route.Route
	origins []Origin
}

// take returns the buffers emptied, with room for n (a zero outBuf
// allocates).
func (b outBuf) take(n int) ([]route.Route, []Origin) {
	r, o := b.routes[:0], b.origins[:0]
	if cap(r) < n {
		r = make([]route.Route, 0, n+n/8)
	}
	if cap(o) < n {
		o = make([]Origin, 0, n+n/8)
	}
	return r, o
}

func (b *outBuf) keep(r []route.Route, o []Origin) { b.routes, b.origins = r, o }

// permute reorders in place so that position i receives what was at
// order[i]: it walks each cycle of the permutation once, with one swap per
// element; order is consumed.
func permute(order []int32, swap func(i, j int)) {
	for i := range order {
		j := i
		for int(order[j]) != j {
			k := int(order[j])
			order[j] = int32(j)
			if k == i {
				break // j now holds what was at i, the cycle is closed
			}
			swap(j, k)
			j = k
		}
	}
}

func sortWithheld(ws []Withheld) []Withheld {
	if len(ws) < 2 {
		return ws
	}
	order := sortOrder(len(ws), func(i int) (netip.Prefix, uint32) { return ws[i].Dst, ws[i].Table },
		func(i, j int) int { return compareOrigin(ws[i].Origin, ws[j].Origin) })
	permute(order, func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
	return ws
}

// stated reports whether an entry's state already has a status, from its
// status reader: stated(in.State().Status()).
func stated[S ~string](_ S, set bool) bool { return set }

func compareOrigin(a, b Origin) int {
	return cmp.Or(cmp.Compare(a.Prefix, b.Prefix), cmp.Compare(a.Table, b.Table),
		cmp.Compare(a.Pod.ContainerID, b.Pod.ContainerID), cmp.Compare(a.Pod.IfName, b.Pod.IfName),
		cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.AFT.Kind, b.AFT.Kind), cmp.Compare(a.AFT.Prefix, b.AFT.Prefix))
}

func keepRoute(a accord.Accord, s subject, eps []endpoint) (bool, string) {
	reaches := func(kinds ...string) bool {
		if s.dst.Bits() == 0 {
			return false
		}
		for _, e := range eps {
			if slices.Contains(kinds, e.kind) && e.prefix.Overlaps(s.dst) {
				return true
			}
		}
		return false
	}
	what := "route"
	if s.pod {
		what = "pod route"
	}
	// The notary ships to Quartermaster at every level, and at level 1 it
	// flushes every record there: routes to it stay (overlay ones cannot
	// where the overlay is torn down).
	if reaches(quartermasterKind) && (s.class != "overlay" || a.RoutePolicy != accord.RoutesMonitoringOnly) {
		return true, ""
	}
	switch a.RoutePolicy {
	case accord.RoutesFull:
		return true, ""
	case accord.RoutesWithholdUnderlayBelowMaster:
		if s.class == classUnderlay && s.tier != accord.TierMaster {
			if s.pod {
				return false, "pod in underlay mode of tier " + s.tier + ", below master"
			}
			return false, "underlay route of tier " + s.tier + ", below master"
		}
		return true, ""
	case accord.RoutesCriticalOnly:
		if !s.pod && (s.class == classManagement || s.class == classIncident) {
			return true, ""
		}
		if reaches(kindManagement, kindIncident, kindMonitoring) {
			return true, ""
		}
		return false, "not a " + what + " to a management endpoint or incident target"
	case accord.RoutesMonitoringOnly:
		if s.class == classOverlay {
			if s.pod {
				return false, "overlay routes are removed (pod in overlay mode)"
			}
			return false, "overlay routes are removed"
		}
		if (!s.pod && (s.class == classMonitoring || s.class == classIncident)) || reaches(kindMonitoring, kindIncident) {
			return true, ""
		}
		return false, "not a monitoring-only " + what
	}
	if !s.pod && s.class == classIncident {
		return true, ""
	}
	return false, "unknown route policy"
}

// overlayRoutes offers a route to each mesh peer's allowed IPs through
// the mesh interface: overlay routes go through the route backend like
// every other route (wireguard-go installs none). A critical peer's
// routes are management routes, so level 2 keeps them; the others are
// overlay routes, withheld at 2 and 1 as the seed's CNI table says.
func overlayRoutes(mesh kedgetree.Kedge_Mesh, consider func(route.Route, Origin, subject)) {
	peerList := mesh.Peers().Peer()
	if peerList.Len() == 0 {
		return
	}
	dev := wgmesh.DefaultInterface
	if v, _ := mesh.Config().Interface(); v != "" {
		dev = v
	}
	// A prefix two peers claim goes to the first by name (the mesh
	// backend rejects the second peer's claim the same way).
	type peer struct {
		name string
		c    kedgetree.Kedge_Mesh_Peers_Peer_Config
	}
	var peers []peer
	for in := range peerList.All() {
		name, _ := in.Name()
		peers = append(peers, peer{name, in.Config()})
	}
	slices.SortFunc(peers, func(a, b peer) int { return cmp.Compare(a.name, b.name) })
	seen := map[netip.Prefix]bool{}
	for _, p := range peers {
		if !p.c.Exists() {
			continue
		}
		class := classOverlay
		if critical, _ := p.c.Critical(); critical {
			class = classManagement
		}
		for _, pfx := range prefixes(p.c.AllowedIps()) {
			pfx = pfx.Masked()
			if seen[pfx] {
				continue
			}
			seen[pfx] = true
			consider(route.Route{Dst: pfx, Device: dev}, Origin{Peer: p.name}, subject{class: class, tier: accord.TierMaster, dst: pfx})
		}
	}
}

// Route classes and endpoint kinds the route policy names: the generated
// enumerations (gen/kedgepath), so a value renamed in yang/ breaks the
// build here rather than changing what the policy keeps.
const (
	classManagement = string(kedgepath.RouteClassManagement)
	classIncident   = string(kedgepath.RouteClassIncident)
	classMonitoring = string(kedgepath.RouteClassMonitoring)
	classOverlay    = string(kedgepath.RouteClassOverlay)
	classUnderlay   = string(kedgepath.RouteClassUnderlay)

	kindManagement = string(kedgepath.EndpointKindManagement)
	kindIncident   = string(kedgepath.EndpointKindIncident)
	kindMonitoring = string(kedgepath.EndpointKindMonitoring)
)
