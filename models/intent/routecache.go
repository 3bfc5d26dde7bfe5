package intent

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// RouteCache makes the reconciler's routes intent cheap after a small
// change to a big table. It keeps, between two intents over the same
// tree, the translation of every /kedge/routes entry and the entries in
// output order, so only changed entries are read and only new ones sorted
// (then merged). The accord's decisions, pods and overlay routes are
// recomputed every time: they are few, or depend on more than one entry.
//
// It learns what changed in two ways. Told of every commit (Observe), it
// re-reads just the entries those commits touched, finding each by its
// keys in the version it reads. Otherwise (first use, a commit it was not
// told of, a lost feed) it walks every entry and re-reads those whose
// config instance is not the one it read last time.
//
// Entries are known by their identity (tree.Ident), which every version
// of the tree shares; an entry deleted and created again is a new one.
// The cache keeps each entry's config instance: a committed instance
// never changes, so the same *tree.Inst with the same Stamp means the
// same config. A RouteCache is not safe for concurrent use; give each
// caller its own.
//
// It is one of the route reconciler's three speed-ups, each behind one
// seam: this cache (the intent), planning from the previous Set
// (dataplane/route fastplan.go) and the in-place state writer (the
// routes component's state.go). What it saves: a one-route change into
// 100,000 routes re-reads and re-sorts one entry instead of all of them
// (intent 30 → 16 ms per one-route change when it learned to place
// changes by binary search; BenchmarkRoutesOneChange in this package,
// BenchmarkRouteSingleInto100k in tests/ end to end). Routes, without a
// cache, stays the reference its differential tests compare it with.
type RouteCache struct {
	byEntry map[tree.Ident]*cachedRoute
	order   []*cachedRoute // live entries in output order
	gen     uint64         // this walk's generation; entries it saw carry it
	// out, merged and merged2 are the returned set's route and origin
	// slices, reused by the next intent; spare is the order's other
	// buffer.
	out, merged, merged2 outBuf
	spare                []*cachedRoute
	dropped              []*cachedRoute // entries of order marked dropped since the last reorder

	// What Observe learned since the last intent: the entries whose
	// config changed (or that went), those whose state status did, and
	// whether the cache may rely on them (synced: the last intent and
	// every commit since were seen, up to seq observed). The entries
	// whose config changed are first counted (pendN) in their commits
	// (pend), and marked dirty by the intent that reads them (absorb,
	// observe.go).
	pend  []pendCommit
	pendN int
	dirty map[tree.Ident]struct{}
	// dirtyRoom is how many entries dirty was made for (absorb sizes
	// it for what it marks), so that a big one is dropped, not
	// kept cleared, even when few entries were marked.
	dirtyRoom int
	restate   map[tree.Ident]struct{}
	observed  uint64
	synced    bool
	// incremental: this intent reads only the dirty entries.
	incremental bool
	// base is what Changes compares against (routedelta.go).
	base deltaBase
	// sideSpare are the side route buffers of the base before last,
	// which Changes fills again.
	sideSpare sideBufs
	// setBufs are the change sets' pod lists given back (RouteSet.Release).
	setBufs setBufList
	// aft caches gRIBI's IP entries (aftcache.go).
	aft aftCache
	// pods caches the pods' routes and refs (podcache.go).
	pods podCache
	// kinds is what Observe made of each schema node it met (observe.go).
	kinds nodeKinds
	// Chunk, when positive, is how many changed route entries one
	// Changes reads at most; the rest come from the set's Next. A bulk
	// Set of 100,000 routes then reaches the backend part by part,
	// pipelined with the reading of the next part, instead of after
	// the whole change set is computed.
	Chunk int
	// marked is dirty in the order Observe marked the entries, which is
	// the order the commits wrote them (a bulk Set's, its client's).
	marked []tree.Ident
	// queue is the dirty entries of a change being read in parts, in
	// that order (routedelta.go); parted says dirty held such a change,
	// and is dropped when it is done (emptied by deletes, its buckets
	// would stay, about 46 B a route after a 100,000-route Set).
	queue  []tree.Ident
	parted bool
	// oneCommit: the change in parts is one commit's, its queue holds
	// the entries not read yet and dirty none; allNew: none of them was
	// cached before (onecommit.go). noOneCommit, set by tests, reads
	// such a change as any other, to compare.
	oneCommit, allNew, noOneCommit bool
	// part is how many entries the last part of such a change read.
	part int
	// finder looks up the entries to read again (find, findAll); toRead,
	// found and foundInsts are the buffers of a part's reading, empty
	// between intents.
	finder     tree.EntryFinder
	toRead     []tree.Ident
	found      []kedgetree.Kedge_Routes_Route
	foundInsts []*tree.Inst
}

// firstPartDiv makes the first part of a change in parts Chunk/8 entries
// (1,024 of the daemon's 8,192), then 2,048 and 4,096: the first part of
// a 100,000-route Set took 27-43 ms to read at 8,192 entries, 3-4 ms at
// 1,024 (BenchmarkObserveBulk/first-part, loaded machine), for three
// more parts in all.
const firstPartDiv = 8

// translated is what one route entry's config says, before any accord:
// its route, its list keys (the prefix as the tree holds it; the table is
// the route's), class and tier. It is kept small: a RouteCache holds one
// per route.
type translated struct {
	rt          entryRoute
	prefix      string
	class, tier string
	err         error
}

// entryRoute is the part of a route.Route a /kedge/routes entry can set
// (no source, scope or next hops), 80 bytes where a route.Route is 136;
// table is the entry's key, which is also its route's table.
type entryRoute struct {
	dst           netip.Prefix
	gateway       netip.Addr
	device        string
	table, metric uint32
}

// compact keeps the fields of r (from routeOf) an entry can set, with
// the entry's table.
func compact(r route.Route, table uint32) entryRoute {
	return entryRoute{dst: r.Dst, gateway: r.Gateway, device: r.Device, table: table, metric: r.Metric}
}

// route is the entry's route (of an entry without err; one with err
// reaches no backend).
func (t *translated) route() route.Route {
	return route.Route{Dst: t.rt.dst, Gateway: t.rt.gateway, Device: t.rt.device, Table: t.rt.table, Metric: t.rt.metric}
}

// origin is the entry's Origin (Stated is filled per intent).
func (t *translated) origin() Origin { return Origin{Prefix: t.prefix, Table: t.rt.table} }

// subject is what the accord's route policy looks at.
func (t *translated) subject() subject {
	return subject{class: t.class, tier: t.tier, dst: t.rt.dst}
}

type cachedRoute struct {
	translated
	id tree.Ident
	// config is the entry's config instance as read: a committed
	// instance never changes, and the cache holding it keeps its address
	// from being reused, so the same pointer means the same config.
	config  *tree.Inst
	gen     uint64
	dropped bool // replaced or gone: leaves the order at the next reorder
	// stated: the entry's state status is set. It is read with the entry
	// and again when Observe reports a status change, not on every
	// intent: at 100,000 routes those reads were most of an intent.
	stated bool
}

// The schema paths Observe looks for: the routes list and its entries'
// state status leaf.
var (
	routeListPath   = kedgepath.Root().Kedge().Routes().RouteAny().SchemaPath()
	routeStatusPath = kedgepath.Root().Kedge().Routes().RouteAny().State().Status().SchemaPath()
)

// Lost tells the cache that commits went by unobserved (the feed was
// lost): the next intent walks every entry.
func (c *RouteCache) Lost() { c.synced = false }

// Routes is the package's Routes, reusing the translations and order of
// unchanged entries; seq is the tree's commit sequence number (the cache
// relies on what Observe told it only when it has seen every commit up to
// seq). The set it returns is valid until the next call: its route and
// origin slices are reused (route.Backend.Set copies what it keeps),
// which keeps a one-route reconcile from allocating the whole table again.
func (c *RouteCache) Routes(t *tree.Tree, a accord.Accord, seq uint64) (RouteSet, error) {
	if c.byEntry == nil {
		n := kedgetree.Of(t).Kedge().Routes().Route().Len()
		c.byEntry = make(map[tree.Ident]*cachedRoute, n)
	}
	c.gen++
	c.incremental = c.synced && seq == c.observed
	c.leaveOneCommit() // the walk reads the dirty set
	if c.incremental {
		c.absorb(-1) // the walk reads every dirty entry
	}
	set, err := routes(t, a, true, c)
	c.base.record(t, a, set)
	// The cache now reflects the tree at seq; commits after it must be
	// observed one by one.
	c.resetDirty()
	c.observed, c.synced = seq, true
	return set, err
}

// find returns the entry id names in the version rt (/kedge/routes, not
// existing when absent) belongs to, or none when it is gone. It looks
// the entry up with the cache's finder, which allocates nothing: a bulk
// Set's 100,000 lookups made a key slice and a key string each.
func (c *RouteCache) find(rt kedgetree.Kedge_Routes, id tree.Ident) kedgetree.Kedge_Routes_Route {
	if !rt.Exists() {
		return kedgetree.Kedge_Routes_Route{}
	}
	r, _ := kedgetree.AsKedge_Routes_Route(c.finder.Find(rt.Inst(), id)) // Observe kept only route entries
	return r
}

// findAll returns the entries ids name in the version rt belongs to, as
// find would one by one, in a buffer of the cache valid until
// doneReading. A part of a bulk change looks up thousands of entries;
// in the trie's order they cost about a third of what they did in the
// commit's (EntryFinder.FindAll).
func (c *RouteCache) findAll(rt kedgetree.Kedge_Routes, ids []tree.Ident) []kedgetree.Kedge_Routes_Route {
	out := slices.Grow(c.found[:0], len(ids))[:len(ids)]
	c.found = out
	if !rt.Exists() {
		clear(out)
		return out
	}
	insts := slices.Grow(c.foundInsts[:0], len(ids))[:len(ids)]
	c.foundInsts = insts
	c.finder.FindAll(rt.Inst(), ids, insts)
	for i, in := range insts {
		out[i], _ = kedgetree.AsKedge_Routes_Route(in) // Observe kept only route entries
	}
	return out
}

// doneReading empties the buffers of findAll and of the entries to read,
// which must not keep a version of the tree, or entries gone, alive.
func (c *RouteCache) doneReading() {
	clear(c.found)
	clear(c.foundInsts)
	clear(c.toRead)
	c.found, c.foundInsts, c.toRead = c.found[:0], c.foundInsts[:0], c.toRead[:0]
}

// findEntry returns the list entry id names under parent, in the version
// parent belongs to, as its typed node (the zero node when it is gone).
func findEntry[T any](parent *tree.Inst, id tree.Ident, as func(*tree.Inst) (T, bool)) T {
	var none T
	e := parent.Entry(id.Schema(), id.Keys()...)
	if e == nil || e.Ident() != id {
		return none
	}
	x, _ := as(e)
	return x
}

// allocator hands out zeroed cache entries (cachedRoute, aftCached) from
// chunks, not one allocation each: a bulk Set of 100,000 routes would
// otherwise make 100,000 objects for the collector to trace.
// Chunks start small and double, since a chunk lives as long as any entry
// in it.
// When the caller knows how many entries it will need (left), no chunk
// is made bigger than that: a part of a bulk change reads 8,192 entries,
// and a last chunk of 4,096 for its last entry would waste the rest.
type allocator[T any] struct {
	slab  []T
	chunk int
	left  int // entries still to come, when known (0: unknown)
}

// new returns a zeroed entry from the current chunk.
func (a *allocator[T]) new() *T {
	if len(a.slab) == 0 {
		a.chunk = min(max(2*a.chunk, 1), 4096)
		if a.left > 0 {
			a.chunk = min(a.chunk, a.left)
		}
		a.slab = make([]T, a.chunk)
	}
	if a.left > 0 {
		a.left--
	}
	e := &a.slab[0]
	a.slab = a.slab[1:]
	return e
}

// read translates entry's config into a new cache entry replacing old
// (nil when the entry is gone or has no config).
func (c *RouteCache) read(id tree.Ident, entry kedgetree.Kedge_Routes_Route, old *cachedRoute, al *allocator[cachedRoute]) *cachedRoute {
	if old != nil {
		old.dropped = true
		c.dropped = append(c.dropped, old)
		delete(c.byEntry, id)
	}
	var cfg kedgetree.Kedge_Routes_Route_Config
	if entry.Exists() {
		cfg = entry.Config()
	}
	if !cfg.Exists() {
		return nil
	}
	ne := al.new()
	*ne = cachedRoute{translated: translate(cfg), id: id, config: cfg.Inst(), gen: c.gen, stated: stated(entry.State().Status())}
	c.byEntry[id] = ne
	return ne
}

// walk offers every /kedge/routes entry to consider, in output order; rt
// is /kedge/routes. When the intent is incremental only the entries
// Observe marked dirty are read again.
func (c *RouteCache) walk(rt kedgetree.Kedge_Routes, full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	var fresh []*cachedRoute
	var al allocator[cachedRoute]
	changed := false
	if c.incremental {
		for id := range c.dirty {
			old := c.byEntry[id]
			if ne := c.read(id, c.find(rt, id), old, &al); ne != nil {
				fresh = append(fresh, ne)
			}
			changed = changed || old != nil
		}
		for id := range c.restate {
			if _, read := c.dirty[id]; read {
				continue
			}
			if e := c.byEntry[id]; e != nil {
				e.stated = stated(c.find(rt, id).State().Status())
			}
		}
	} else {
		seen := 0
		for r := range rt.Route().All() {
			cfg := r.Config()
			if !cfg.Exists() {
				continue
			}
			seen++
			id := r.Inst().Ident()
			e := c.byEntry[id]
			if e != nil && e.config == cfg.Inst() {
				e.gen = c.gen
				e.stated = stated(r.State().Status()) // a walk trusts nothing it remembers
				continue
			}
			fresh = append(fresh, c.read(id, r, e, &al))
			changed = changed || e != nil
		}
		// Entries not seen are gone from the tree.
		if len(c.byEntry) > seen {
			for _, e := range c.order {
				if e.gen != c.gen && !e.dropped {
					e.dropped = true
					c.dropped = append(c.dropped, e)
					delete(c.byEntry, e.id)
					changed = true
				}
			}
		}
	}
	if len(fresh) > 0 || changed {
		c.reorder(fresh)
	}
	for _, e := range c.order {
		o := e.origin()
		if full {
			o.Stated = e.stated
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

// reorder drops the replaced and gone entries and merges the fresh ones,
// sorted, into the order. After a small change it touches only the
// entries around the change: each fresh entry's place is found by binary
// search and the runs between are copied whole (reading every entry of a
// 100,000-route order to compare it cost more than the rest of the
// intent).
func (c *RouteCache) reorder(fresh []*cachedRoute) {
	// Sort keys by value, not through the pointers: after a bulk Set
	// fresh holds every entry, and chasing pointers dominates the sort.
	order := sortOrder(len(fresh), func(i int) (netip.Prefix, uint32) { return fresh[i].rt.dst, fresh[i].rt.table },
		func(i, j int) int { return compareOrigin(fresh[i].origin(), fresh[j].origin()) })
	permute(order, func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	if len(fresh)+len(c.dropped) <= len(c.order)/16 {
		// A few changes (a one-route Set): edited in place, not copied
		// into the spare buffer, which a collection makes slow (editOrder).
		c.order = editOrder(c.order, fresh, c.dropped, compareCached)
		clear(c.dropped)
		c.dropped = c.dropped[:0]
		return
	}
	out := mergeOrder(c.spare, c.order, fresh, c.dropped, func(e *cachedRoute) bool { return e.dropped }, compareCached)
	clear(c.dropped)
	c.dropped = c.dropped[:0]
	clear(c.order) // the spare buffer must not keep dropped entries alive
	c.spare, c.order = c.order[:0], out
}

// reserve makes room for n more entries at once when a change in parts
// brings at least as many as the cache holds (a bulk Set into an empty
// table): grown part by part, the entries' map and the order's two
// buffers were allocated about twice their final size on the way, and
// the map rehashed every entry at each step.
func (c *RouteCache) reserve(n int) {
	if n < 1024 || n < len(c.byEntry) {
		return
	}
	m := make(map[tree.Ident]*cachedRoute, len(c.byEntry)+n)
	maps.Copy(m, c.byEntry)
	c.byEntry = m
	c.order = slices.Grow(c.order, n)
	c.spare = slices.Grow(c.spare[:0], len(c.order)+n)
}

// key is the entry's place in the order. It is computed when needed, not
// kept: 32 B a route in a cache of 100,000.
func (e *cachedRoute) key() sortKey { return keyOf(e.rt.dst, e.rt.table) }

func compareCached(a, b *cachedRoute) int {
	if c := compareKeys(a.key(), b.key()); c != 0 {
		return c
	}
	return compareOrigin(a.origin(), b.origin())
}
