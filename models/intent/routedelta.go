package intent

import (
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// RouteDelta is how a RouteSet from RouteCache.Changes differs from the
// set the cache returned before it: the backend's Patch (the changed
// /kedge/routes entries', pods' and mesh peers' routes), with the origin
// of each Put beside it.
type RouteDelta struct {
	Patch route.Patch
	// PutOrigins[i] is the tree entry of Patch.Put[i].
	PutOrigins []Origin
	// Installed are the origins of the pod and overlay routes the
	// change leaves as they were: installed, since a backend takes a
	// Patch only when it left every item of the set before as desired
	// (route.ErrNoBase), so a pod's state can fold them in.
	Installed []Origin
	// bufs hold the set's Pods and Installed, for RouteSet.Release.
	bufs *setBufs
}

// deltaBase is what the set a RouteCache returned last was computed
// under, and its pod and overlay routes: a change to anything else than
// route entries, pods, mesh peers and gRIBI's entries, next hops and
// groups (route policy, endpoints, underlay VLANs, gRIBI's sessions)
// makes Changes compute the whole set again.
type deltaBase struct {
	ok bool
	// shared: two routes of the set share a destination; the backend
	// fails them, and only a full set may change them.
	shared bool
	level  uint8
	policy string
	eps    []endpoint
	ifaces []route.Interface
	vlans  []VLANRef // Stated cleared: writing state changes nothing here
	// side are the kept pod and overlay routes, in set order, and their
	// origins.
	side  []route.Route
	sideO []Origin
	// sideKeys are the keys of every pod and overlay route, kept or
	// withheld, sorted: a gRIBI entry with one of them is overridden.
	sideKeys []sortKey
}

// sideBufs are the buffers of one generation of side routes.
type sideBufs struct {
	r     []route.Route
	o     []Origin
	k     []sortKey
	isNew []bool
	sort  sortBuf // the side routes' order, used within one Changes
}

// setBufs are the lists of a change set that grow with the pods, not
// with the change: its Pods and Delta.Installed, about 150 B a pod
// together, allocated for every commit they made up most of a pod ADD's
// allocations at 1,000 pods. A change set takes them from its cache's
// free list and its consumer gives them back (Release) once done with it.
type setBufs struct {
	home      *setBufList
	pods      []PodRef
	installed []Origin
}

// setBufList is a cache's free change set buffers. Release may run on
// another goroutine than Changes (the applier patches one part of a bulk
// change while the next is read).
type setBufList struct {
	mu   sync.Mutex
	free []*setBufs
}

// maxFreeSetBufs bounds the free list: a bulk change's parts are released
// together, and one set's lists are enough for the next.
const maxFreeSetBufs = 2

func (l *setBufList) get() *setBufs {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return b
	}
	return &setBufs{home: l}
}

func (l *setBufList) put(b *setBufs) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < maxFreeSetBufs {
		l.free = append(l.free, b)
	}
}

// Release gives the set's Pods and Delta.Installed back for a later
// change set to reuse; the caller must be done with the set and every
// copy of it (a RouteSet is a value: copies share these lists). A set
// that took no buffers (a whole set, a posture step's) is left as it is.
// The route reconciler's applier releases the change sets it applied.
func (s *RouteSet) Release() {
	if s.Delta == nil || s.Delta.bufs == nil {
		return
	}
	b := s.Delta.bufs
	s.Delta.bufs = nil
	if s.Pods != nil {
		clear(s.Pods) // their strings are the tree's: do not keep them
		b.pods = s.Pods[:0]
		s.Pods = nil
	}
	if s.Delta.Installed != nil {
		clear(s.Delta.Installed)
		b.installed = s.Delta.Installed[:0]
		s.Delta.Installed = nil
	}
	b.home.put(b)
}

// record makes set, computed from t under a, the base of the next Changes.
func (b *deltaBase) record(t *tree.Tree, a accord.Accord, set RouteSet) {
	*b = deltaBase{ok: true, level: a.Level, policy: a.RoutePolicy}
	if k := kedgetree.Of(t).Kedge(); k.Exists() {
		b.eps = endpoints(k.Routes())
	}
	b.ifaces, b.vlans = cloneInterfaces(set.Config.Interfaces), unstated(set.VLANs)
	rs := set.Config.Routes
	for i := 1; i < len(rs) && !b.shared; i++ {
		b.shared = compareKeys(keyOf(rs[i-1].Dst, rs[i-1].Table), keyOf(rs[i].Dst, rs[i].Table)) == 0
	}
	for i, o := range set.Origins {
		if o.IsPod() || o.IsOverlay() {
			b.side = append(b.side, set.Config.Routes[i])
			b.sideO = append(b.sideO, o)
			b.sideKeys = append(b.sideKeys, keyOf(set.Config.Routes[i].Dst, set.Config.Routes[i].Table))
		}
	}
	for _, w := range set.Withheld {
		if w.Origin.IsPod() || w.Origin.IsOverlay() {
			b.sideKeys = append(b.sideKeys, keyOf(w.Dst, w.Table))
		}
	}
	slices.SortFunc(b.sideKeys, compareKeys)
}

func cloneInterfaces(ifs []route.Interface) []route.Interface {
	out := slices.Clone(ifs)
	for i := range out {
		out[i].Addresses = slices.Clone(out[i].Addresses)
	}
	return out
}

func unstated(vs []VLANRef) []VLANRef {
	out := slices.Clone(vs)
	for i := range out {
		out[i].Stated = false
	}
	return out
}

// Changes is Routes, but returns only what changed since the set the
// cache returned last when it can tell (every commit since observed, the
// same route policy, endpoints, underlay VLANs and gRIBI sessions, no two
// origins sharing a destination among the changes): then the set's Delta
// is set. It reads the route entries and gRIBI IP entries the observed
// commits touched (and the gRIBI entries of a group whose resolution
// changed: aftdelta.go), the pods they touched (podcache.go) and every
// mesh peer, never the other entries or pods, so a commit touching k of
// n routes costs O(k log n) plus a pass over the cached pods' routes and
// the peers (the orders are kept by binary search; they still move n
// pointers once per commit). This is the routes intent's seam of the
// incremental path (BenchmarkRoutesOneChange and BenchmarkPodsOneChange
// in this package, BenchmarkRouteSingleInto100k and
// BenchmarkPodAddInto100k in tests/); Routes, the
// full recomputation, is the reference TestRouteChangesMatchRoutes checks
// it against.
func (c *RouteCache) Changes(t *tree.Tree, a accord.Accord, seq uint64) (RouteSet, error) {
	if !c.base.ok || c.base.shared || !c.synced || seq != c.observed || a.Level != c.base.level || a.RoutePolicy != c.base.policy || c.byEntry == nil {
		return c.Routes(t, a, seq)
	}
	k := kedgetree.Of(t).Kedge()
	if !k.Exists() {
		return c.Routes(t, a, seq)
	}
	rt := k.Routes()
	eps := endpoints(rt)
	if !slices.Equal(eps, c.base.eps) {
		return c.Routes(t, a, seq)
	}
	var set RouteSet
	set.Config.Interfaces, set.VLANs = UnderlayInterfaces(t, a)
	if !reflect.DeepEqual(set.Config.Interfaces, c.base.ifaces) || !reflect.DeepEqual(unstated(set.VLANs), c.base.vlans) {
		return c.Routes(t, a, seq)
	}

	reasons := withholdReasons{prefix: "posture level " + strconv.Itoa(int(a.Level)) + " (" + a.RoutePolicy + "): "}
	// Pods from the cache, which reads only the pods the observed
	// commits touched (podcache.go), and mesh peers, read whole (they
	// are few), into the buffers of the base before last (nothing
	// outside the cache holds them: Patch and Installed take copies).
	// Grown by append each time, they were about half of what a pod ADD
	// allocated at 1,000 pods.
	sp := &c.sideSpare
	sideR, sideO := sp.r[:0], sp.o[:0]
	sideKeys := sp.k[:0] // kept or not, for gRIBI's precedence
	pc := &c.pods
	pc.sync(k.Pods(), true)
	bufs := c.setBufs.get()
	set.Pods = slices.Grow(bufs.pods[:0], len(pc.order))
	for _, p := range pc.order {
		switch {
		case p.pending:
			set.PodsPending = append(set.PodsPending, p.ref)
		default:
			for _, why := range p.invalid {
				set.Invalid = append(set.Invalid, Withheld{Reason: why, Origin: p.origin()})
			}
			set.Pods = append(set.Pods, p.ref)
		}
	}
	if len(set.Pods) == 0 {
		bufs.pods = set.Pods
		set.Pods = nil // as Routes leaves it
	}
	// The peers' kept routes, sorted (they are few), and the pods', in
	// set order already: straight into the side routes without peers,
	// or into the cache's scratch buffer to be merged with them.
	ovR, ovO := pc.overlay.take(0)
	overlayRoutes(k.Mesh(), func(r route.Route, o Origin, s subject) {
		sideKeys = append(sideKeys, keyOf(r.Dst, r.Table))
		if ok, _ := keepRoute(a, s, eps); ok {
			ovR, ovO = append(ovR, r), append(ovO, o)
		}
	})
	pc.overlay.keep(ovR, ovO)
	peerKeys := len(sideKeys)
	podR, podO := sideR, sideO
	if len(ovR) > 0 {
		podR, podO = pc.kept.take(len(pc.routes))
	}
	for _, pr := range pc.routes {
		r, o := pr.route(), pr.p.origin()
		sideKeys = append(sideKeys, keyOf(r.Dst, r.Table))
		if ok, why := keepRoute(a, pr.p.subject(r.Dst), eps); ok {
			podR, podO = append(podR, r), append(podO, o)
		} else {
			set.Withheld = append(set.Withheld, Withheld{Dst: r.Dst, Table: r.Table, Reason: reasons.get(why), Origin: o})
		}
	}
	if len(ovR) == 0 {
		sideR, sideO = podR, podO
	} else {
		pc.kept.keep(podR, podO)
		order := sp.sort.order(len(ovR), func(i int) (netip.Prefix, uint32) { return ovR[i].Dst, ovR[i].Table },
			func(i, j int) int { return compareOrigin(ovO[i], ovO[j]) })
		permute(order, func(i, j int) {
			ovR[i], ovR[j] = ovR[j], ovR[i]
			ovO[i], ovO[j] = ovO[j], ovO[i]
		})
		sideR, sideO = mergeRuns(podR, podO, ovR, ovO, outBuf{routes: sideR, origins: sideO})
	}
	if peerKeys > 0 {
		// The peers' keys came first, then the pods' in order.
		slices.SortFunc(sideKeys, compareKeys)
	}
	var prev sortKey
	for i := 1; i < len(sideR); i++ {
		if i == 1 {
			prev = keyOf(sideR[0].Dst, sideR[0].Table)
		}
		key := keyOf(sideR[i].Dst, sideR[i].Table)
		if compareKeys(prev, key) == 0 {
			return c.Routes(t, a, seq) // two origins, one destination: the full set reports it
		}
		prev = key
	}
	var p route.Patch
	var putO []Origin
	// Compare with the base's side routes in one merge pass (both are in
	// set order): new or changed ones must not meet a route entry, gone
	// ones are deleted.
	sideNew := slices.Grow(sp.isNew[:0], len(sideR))[:len(sideR)]
	clear(sideNew)
	sp.isNew = sideNew
	bs, bo := c.base.side, c.base.sideO
	for i, j := 0, 0; i < len(sideR) || j < len(bs); {
		cmp := -1
		switch {
		case i == len(sideR):
			cmp = 1
		case j < len(bs) && sideR[i].Dst == bs[j].Dst && sideR[i].Table == bs[j].Table && unstate(sideO[i]) == unstate(bo[j]):
			cmp = 0 // most side routes stay: equal without computing their keys
		case j < len(bs):
			cmp = compareRoutes(sideR[i], sideO[i], bs[j], bo[j])
		}
		switch {
		case cmp > 0:
			p.Del = append(p.Del, bs[j])
			j++
			continue
		case cmp == 0 && sideR[i].Equal(bs[j]):
		default:
			sideNew[i] = true
			if c.orderHas(keyOf(sideR[i].Dst, sideR[i].Table), nil, nil) {
				return c.Routes(t, a, seq)
			}
		}
		if cmp == 0 {
			j++
		}
		i++
	}

	// The route entries the observed commits touched.
	type change struct{ old, new *cachedRoute }
	var changes []change
	// An entry whose state status went (or came) is reported again if it
	// lost it, so that the state writer puts it back (in the first part
	// of a change in parts: dirty entries are read with their status in
	// theirs).
	if len(c.restate) > 0 {
		c.absorb(-1) // which entries are read again, the check needs all
	}
	for id := range c.restate {
		if _, read := c.dirty[id]; read {
			continue
		}
		if e := c.byEntry[id]; e != nil {
			e.stated = stated(c.find(rt, id).State().Status())
			if !e.stated {
				changes = append(changes, change{e, e})
			}
		}
	}
	clear(c.restate)
	var n int
	if c.Chunk > 0 && (c.parted || len(c.dirty)+c.pending() > c.Chunk) {
		if !c.parted {
			// In parts, in the order the commits wrote the entries: the
			// last route of a 100,000-route Set reaches the kernel last.
			c.beginParts()
		} else if c.part == max(c.Chunk/firstPartDiv, 1) {
			// From the second part on, read while the backend
			// programs the first: not on the commit's way to it.
			c.reserve(c.unread() + c.pending())
		}
		// A change in parts starts with a small one, so that its first
		// routes reach the backend soon after the commit, and doubles
		// up to Chunk; each part marks only the entries it reads.
		c.part = min(max(2*c.part, c.Chunk/firstPartDiv, 1), c.Chunk)
		if more := c.part - c.unread(); more > 0 {
			c.absorb(more) // (absorb takes a negative count for all)
		}
		n = min(c.unread(), c.part)
	} else {
		c.absorb(-1)
		n = len(c.dirty)
	}
	changes = slices.Grow(changes, n)
	fresh := make([]*cachedRoute, 0, n)
	al := allocator[cachedRoute]{left: n}
	// The part's entries are chosen first and then looked up together
	// (readPart): in the trie's order, not the commits'.
	toRead := slices.Grow(c.toRead[:0], n)
	take := func(id tree.Ident) {
		n--
		toRead = append(toRead, id)
	}
	for n > 0 && len(c.queue) > 0 && c.oneCommit {
		take(c.queue[0]) // no entry is queued twice (onecommit.go)
		c.queue = c.queue[1:]
	}
	for n > 0 && len(c.queue) > 0 {
		id := c.queue[0]
		c.queue = c.queue[1:]
		// Read now, so a later part must not read it again: one delete,
		// whose effect on the count says whether it was still dirty, in
		// place of a probe and a delete.
		d := len(c.dirty)
		delete(c.dirty, id)
		if len(c.dirty) < d {
			take(id)
		}
	}
	if len(c.queue) == 0 {
		c.queue = nil
	}
	for id := range c.dirty { // not queued: not in parts
		if n == 0 {
			break
		}
		delete(c.dirty, id) // read now: a later part must not read it again
		take(id)
	}
	c.toRead = toRead
	for i, entry := range c.findAll(rt, toRead) {
		id := toRead[i]
		var old *cachedRoute
		if !c.allNew { // else none: onecommit.go
			old = c.byEntry[id]
		}
		ne := c.read(id, entry, old, &al)
		if ne != nil {
			fresh = append(fresh, ne)
		}
		changes = append(changes, change{old, ne})
	}
	c.doneReading()
	if len(fresh) > 0 || len(c.dropped) > 0 {
		c.reorder(fresh)
	}
	// gRIBI's IP entries the observed commits touched, and those whose
	// group changed (aftdelta.go).
	aftCh, aftStates, whole := c.aftChanges(k.Aft(), sideKeys)
	if whole {
		return c.Routes(t, a, seq)
	}
	// A destination another origin shares (now or before) needs the full
	// set: the backend keys routes by destination. The cache is
	// consistent here, so the full set starts from it. After a bulk
	// change one pass over the order is cheaper than a search per change.
	if bulk := len(changes) > len(c.order)/16; bulk {
		for i := 1; i < len(c.order); i++ {
			if sameKey(c.order[i-1], c.order[i]) {
				return c.Routes(t, a, seq)
			}
		}
		for _, e := range fresh {
			if sideHas(sideR, e.key()) {
				return c.Routes(t, a, seq)
			}
		}
		if len(c.aft.order) > 0 {
			for _, ch := range changes {
				for _, e := range []*cachedRoute{ch.old, ch.new} {
					if e != nil && c.aft.has(e.key(), nil, nil) {
						return c.Routes(t, a, seq)
					}
				}
			}
		}
	} else {
		for _, ch := range changes {
			for _, e := range []*cachedRoute{ch.old, ch.new} {
				if e != nil && (c.orderHas(e.key(), ch.old, ch.new) || sideHas(sideR, e.key()) || c.aft.has(e.key(), nil, nil)) {
					return c.Routes(t, a, seq)
				}
			}
		}
	}
	if len(changes) > 1 {
		// About one put a change: grown by doubling, a part's 8,192
		// routes (136 B each) were copied about twice over.
		p.Put, putO = make([]route.Route, 0, len(changes)), make([]Origin, 0, len(changes))
	}
	kept := func(e *cachedRoute) bool {
		if e == nil || e.err != nil {
			return false
		}
		ok, _ := keepRoute(a, e.subject(), eps)
		return ok
	}
	for _, ch := range changes {
		oldKept := kept(ch.old)
		if ch.new == nil {
			if oldKept {
				p.Del = append(p.Del, ch.old.route())
			}
			continue
		}
		o := ch.new.origin()
		o.Stated = ch.new.stated
		switch ok, why := keepRoute(a, ch.new.subject(), eps); {
		case ch.new.err != nil:
			set.Invalid = append(set.Invalid, Withheld{Dst: ch.new.rt.dst, Table: o.Table, Reason: ch.new.err.Error(), Origin: o})
		case ok:
			if ch.new == ch.old { // reported again for its state; fresh entries are put below
				p.Put = append(p.Put, ch.new.route())
				putO = append(putO, o)
			}
			if oldKept && ch.old.route().Key() != ch.new.route().Key() {
				p.Del = append(p.Del, ch.old.route())
			}
			continue
		default:
			set.Withheld = append(set.Withheld, Withheld{Dst: ch.new.rt.dst, Table: ch.new.rt.table, Reason: reasons.get(why), Origin: o})
		}
		if oldKept {
			p.Del = append(p.Del, ch.old.route())
		}
	}
	// In set order, as a full set would send them: a bulk change (a
	// 100,000-route Set is one) reaches the kernel in key order, and the
	// routes' state in a stable one. The reorder sorted fresh.
	again := len(p.Put)
	for _, e := range fresh {
		if e.err == nil {
			if ok, _ := keepRoute(a, e.subject(), eps); ok {
				o := e.origin()
				o.Stated = e.stated
				p.Put = append(p.Put, e.route())
				putO = append(putO, o)
			}
		}
	}
	if again > 0 && len(p.Put) > 1 {
		order := sortOrder(len(p.Put), func(i int) (netip.Prefix, uint32) { return p.Put[i].Dst, p.Put[i].Table },
			func(i, j int) int { return compareOrigin(putO[i], putO[j]) })
		permute(order, func(i, j int) {
			p.Put[i], p.Put[j] = p.Put[j], p.Put[i]
			putO[i], putO[j] = putO[j], putO[i]
		})
	}
	// gRIBI's: merged in, so the non-side puts stay in set order.
	aftPut, aftPutO := c.aftPatch(a, eps, aftCh, &set, &p, &reasons)
	if len(aftPut) > 0 {
		if len(p.Put) == 0 {
			p.Put, putO = aftPut, aftPutO
		} else {
			p.Put, putO = mergeRuns(p.Put, putO, aftPut, aftPutO, outBuf{})
		}
	}
	set.AFT = append(set.AFT, aftStates...)
	sortAFTStates(set.AFT)
	set.HasAFT = aftHolds(k.Aft())
	// Pod and overlay routes: the new and changed ones are put; the
	// others the backend holds installed (a Patch applies only on a
	// backend that left every item as desired).
	nNew := 0
	for _, isNew := range sideNew {
		if isNew {
			nNew++
		}
	}
	unchanged := slices.Grow(bufs.installed[:0], len(sideR)-nNew)
	for i, r := range sideR {
		if !sideNew[i] {
			unchanged = append(unchanged, sideO[i])
			continue
		}
		p.Put = append(p.Put, r)
		putO = append(putO, sideO[i])
	}
	set.Withheld = sortWithheld(set.Withheld)
	set.Invalid = sortWithheld(set.Invalid)
	set.Delta = &RouteDelta{Patch: p, PutOrigins: putO, Installed: unchanged, bufs: bufs}
	sp.r, sp.o, sp.k = c.base.side, c.base.sideO, c.base.sideKeys
	c.base.side, c.base.sideO, c.base.sideKeys = sideR, sideO, sideKeys
	if c.unread() > 0 || c.pending() > 0 {
		// The rest in further parts, from the same version: the cache
		// stays at seq, with the entries not read yet still dirty.
		set.Next = func() (RouteSet, error) {
			s, err := c.Changes(t, a, seq)
			s.Seq = seq
			return s, err
		}
		return set, nil
	}
	c.resetDirty()
	c.observed = seq
	return set, nil
}

// sameKey is compareKeys(a.key(), b.key()) == 0 without computing the
// keys: the key is a function of the destination and the table (0 is
// 254), and equal keys mean equal destinations (a prefix has no zone).
// The bulk check runs it on every neighbouring pair of the order once a
// part.
func sameKey(a, b *cachedRoute) bool {
	return a.rt.dst == b.rt.dst && mainTable(a.rt.table) == mainTable(b.rt.table)
}

// mainTable is the table as keyOf sorts it.
func mainTable(t uint32) uint32 {
	if t == 0 {
		return 254
	}
	return t
}

// orderHas reports whether a live route entry other than self and its
// replacement has key.
func (c *RouteCache) orderHas(key sortKey, self, repl *cachedRoute) bool {
	i := sort.Search(len(c.order), func(i int) bool { return compareKeys(c.order[i].key(), key) >= 0 })
	for ; i < len(c.order) && compareKeys(c.order[i].key(), key) == 0; i++ {
		if e := c.order[i]; e != self && e != repl && !e.dropped {
			return true
		}
	}
	return false
}

// sideHas reports whether a sorted side route has key.
func sideHas(rs []route.Route, key sortKey) bool {
	i := sort.Search(len(rs), func(i int) bool { return compareKeys(keyOf(rs[i].Dst, rs[i].Table), key) >= 0 })
	return i < len(rs) && compareKeys(keyOf(rs[i].Dst, rs[i].Table), key) == 0
}

// resetDirty empties the set of entries Observe marked, dropping it when
// a bulk commit made it big: a cleared map keeps its buckets, about 46 B
// a route after a 100,000-route Set.
func (c *RouteCache) resetDirty() {
	c.oneCommit, c.allNew = false, false
	if len(c.dirty) > 4096 || c.dirtyRoom > 4096 || c.parted {
		c.dirty, c.dirtyRoom, c.parted = nil, 0, false
	}
	c.part = 0
	if cap(c.marked) > 4096 {
		c.marked = nil
	}
	clear(c.marked)
	c.marked = c.marked[:0]
	if len(c.restate) > 4096 {
		c.restate = nil
	}
	c.queue = nil
	if cap(c.toRead) > 4096 {
		// A bulk change's part buffers: about 80 B an entry of a part.
		c.toRead, c.found, c.foundInsts, c.finder = nil, nil, nil, tree.EntryFinder{}
	}
	clear(c.pend)
	c.pend, c.pendN = c.pend[:0], 0
	clear(c.dirty)
	clear(c.restate)
	c.aft.metaDirty = false
}

// unstate is o without Stated: the origin's identity.
func unstate(o Origin) Origin { o.Stated = false; return o }
