package intent

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/internal/maproom"
)

// aftCache is RouteCache's part for gRIBI's IP entries (/kedge/aft): the
// translation of each entry (prefix, group, session) kept between intents
// in key order, so after a batch of injections only the new entries are
// read and sorted. Next hops, groups and sessions are few: the whole
// intent reads them every time and resolves every entry through them
// (map lookups); a change set reads them only after a commit changed
// them, and resolves just the changed entries and those of the groups
// whose resolution changed (aftdelta.go). It learns what changed like
// RouteCache: from Observe when it has seen every commit, else by walking
// every entry and re-reading those whose config instance's Stamp moved. Like RouteCache it knows
// entries by identity (tree.Ident), which every version shares, and
// finds an entry it must read again in the version the intent reads.
//
// What it saves: the gRIBI path's reconciler re-read and re-sorted every
// injected entry on each reconcile of a bulk load (140-410 ms per
// reconcile at 20,000-100,000 entries; BenchmarkGRIBI100k in tests/).
type aftCache struct {
	byID  map[tree.Ident]*aftCached
	order []*aftCached // live entries in key order
	spare []*aftCached // the order's other buffer
	// removed are entries that left byID since the last reorder.
	removed []*aftCached
	// restate: cached entries whose state status went, to read again
	// only that.
	restate map[tree.Ident]struct{}
	// marked are the entries whose config changed (or that went), in the
	// order Observe marked them, the order the commits wrote them (a bulk
	// load's: by prefix), so readDirty finds them in the lists one after
	// another, each lookup missing the cache less. An entry two commits
	// changed is in it twice: readDirty reads it once (its first), by
	// the generation its new translation carries. Kept unique with a
	// set, a bulk load's 100,000 entries cost a map of them and an
	// insert each (BenchmarkAFTBulkChange).
	marked []tree.Ident
	// metaDirty: a commit changed the config of a session, next hop or
	// group, so the entries' resolution may have changed.
	metaDirty bool
	gen       uint64
	// meta is what the last set resolved the entries through; groups
	// heads each group's list of the entries that name it (the entries'
	// gprev and gnext), so a group's change re-resolves just those.
	meta   aftMeta
	groups map[uint64]*aftCached
	// room is how many entries byID was made for or has held, whichever
	// is more: a map keeps its room when entries leave it (see reserve).
	room maproom.Room
}

type aftCached struct {
	kind         AFTKind
	prefix       string
	dst          netip.Prefix
	perr         error
	nhg          uint64
	session      string
	key          sortKey
	id           tree.Ident
	config       *tree.Inst
	stamp, gen   uint64
	gprev, gnext *aftCached
	stated       bool
	// inSet: the entry's route is in the set the cache returned last
	// (installed, so a change that makes it no route deletes it).
	inSet   bool
	dropped bool
	// shared: another entry of the order has the same key (otherHas's
	// pass writes it; read only right after).
	shared bool
}

// The schema paths aftCache.observe looks for.
var (
	aftV4Path      = kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4EntryAny().SchemaPath()
	aftV6Path      = kedgepath.Root().Kedge().Aft().Ipv6Entries().Ipv6EntryAny().SchemaPath()
	aftV4Below     = aftV4Path + "/"
	aftV6Below     = aftV6Path + "/"
	aftV4Status    = kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4EntryAny().State().Status().SchemaPath()
	aftV6Status    = kedgepath.Root().Kedge().Aft().Ipv6Entries().Ipv6EntryAny().State().Status().SchemaPath()
	aftStatusPaths = [2]string{aftV4Status, aftV6Status}
	aftMetaPaths   = [3]string{kedgepath.Root().Kedge().Aft().NextHops().SchemaPath() + "/",
		kedgepath.Root().Kedge().Aft().NextHopGroups().SchemaPath() + "/",
		kedgepath.Root().Kedge().Aft().Sessions().SchemaPath() + "/"}
)

// observe marks the IP entry a change below one touched (kind says which
// list), or notes that next hops, groups or sessions changed: its config,
// or its state status (the cache remembers which entries have one: see
// below). An entry's leaves come one after another in a commit's changes
// (three of each entry a gRIBI bulk load writes), so the entry just
// marked (*last, of this commit) is not marked again; left is how many
// changes of the commit are left, this one included.
func (c *aftCache) observe(state bool, ch tree.Change, kind changeKind, left int, last *tree.Ident) {
	list := aftV4Path
	switch kind {
	case kindAFTMeta:
		if !state {
			c.metaDirty = true
		}
		return
	case kindAFTv6:
		list = aftV6Path
	}
	if state && ch.Node.Path != aftStatusPaths[0] && ch.Node.Path != aftStatusPaths[1] {
		return
	}
	e := ch.In
	for !e.IsZero() && e.Schema().Path != list {
		e = e.Parent()
	}
	switch {
	case e.IsZero() || e == *last:
	case state:
		// As RouteCache's entries do (noteStated): after the applier
		// stated a bulk load's batch, reading every entry again cost a
		// walk of the lists (about 80 ms at 100,000 entries) and a map
		// of the batch.
		*last = e
		var stated *bool
		if x := c.byID[e]; x != nil {
			stated = &x.stated
		}
		noteStated(&c.restate, e, stated, ch.Val.IsSet())
	default:
		*last = e
		if c.marked == nil {
			// Sized for the rest of the commit being IP entries of
			// three leaves (prefix, group, session: what gRIBI
			// writes), so a bulk load's batch does not grow it
			// step by step.
			c.marked = make([]tree.Ident, 0, left/3)
		}
		c.marked = append(c.marked, e)
	}
}

// reset forgets every entry (/kedge/aft is gone).
func (c *aftCache) reset() {
	*c = aftCache{gen: c.gen}
}

// reserve makes room for n more live entries at once when that at least
// doubles them (a bulk load's batch: 72,000 entries into 28,000) and
// byID never held as many. Grown an entry at a time, byID allocated about
// twice its final size on the way and rehashed every entry at each step.
func (c *aftCache) reserve(n int) { c.byID = maproom.Reserve(c.byID, &c.room, n) }

// add makes e a live entry.
func (c *aftCache) add(e *aftCached) {
	c.byID[e.id] = e
	c.room.Held(len(c.byID))
	if c.groups == nil {
		c.groups = map[uint64]*aftCached{}
	}
	if h := c.groups[e.nhg]; h != nil {
		e.gnext, h.gprev = h, e
	}
	c.groups[e.nhg] = e
}

// remove takes e out of the live entries (it leaves the order at the
// next reorder).
func (c *aftCache) remove(e *aftCached) {
	delete(c.byID, e.id)
	if e.gprev != nil {
		e.gprev.gnext = e.gnext
	} else if e.gnext != nil {
		c.groups[e.nhg] = e.gnext
	} else {
		delete(c.groups, e.nhg)
	}
	if e.gnext != nil {
		e.gnext.gprev = e.gprev
	}
	e.gprev, e.gnext, e.dropped = nil, nil, true
	c.removed = append(c.removed, e)
}

// read translates an IP entry's config (nil when it has none), into an
// entry from al.
func (c *aftCache) read(in *tree.Inst, full bool, al *allocator[aftCached]) *aftCached {
	var kind AFTKind
	var cfg *tree.Inst
	var prefix, session string
	var nhg uint64
	var st bool
	if v4, ok := kedgetree.AsKedge_Aft_Ipv4Entries_Ipv4Entry(in); ok {
		cf := v4.Config()
		if !cf.Exists() {
			return nil
		}
		kind, cfg = AFTIPv4, cf.Inst()
		prefix, _ = cf.Prefix()
		nhg, _ = cf.NextHopGroup()
		session, _ = cf.Session()
		st = full && stated(v4.State().Status())
	} else if v6, ok := kedgetree.AsKedge_Aft_Ipv6Entries_Ipv6Entry(in); ok {
		cf := v6.Config()
		if !cf.Exists() {
			return nil
		}
		kind, cfg = AFTIPv6, cf.Inst()
		prefix, _ = cf.Prefix()
		nhg, _ = cf.NextHopGroup()
		session, _ = cf.Session()
		st = full && stated(v6.State().Status())
	} else {
		return nil
	}
	e := al.new()
	*e = aftCached{kind: kind, prefix: prefix, nhg: nhg, session: session, id: in.Ident(), config: cfg,
		stamp: cfg.Stamp(), gen: c.gen, stated: st}
	e.dst, e.perr = netip.ParsePrefix(prefix)
	e.dst = e.dst.Masked()
	e.key = keyOf(e.dst, aftTable)
	return e
}

// restated reads again whether the entry in has a state status.
func restated(in *tree.Inst) bool {
	if v4, ok := kedgetree.AsKedge_Aft_Ipv4Entries_Ipv4Entry(in); ok {
		return stated(v4.State().Status())
	}
	if v6, ok := kedgetree.AsKedge_Aft_Ipv6Entries_Ipv6Entry(in); ok {
		return stated(v6.State().Status())
	}
	return false
}

// aftChange is an IP entry a change set looks at again: old is what the
// last set had (nil: a new entry), new what the tree holds now (nil:
// gone). The same entry twice is one resolved again (its group changed,
// or its state went).
type aftChange struct{ old, new *aftCached }

// changes reads the entries Observe marked, in the version a belongs to,
// and returns them; the order is brought up to date. Entries whose state
// status went are returned as unchanged, to be stated again.
func (c *aftCache) changes(a kedgetree.Kedge_Aft) []aftChange {
	if c.byID == nil {
		c.byID = map[tree.Ident]*aftCached{}
	}
	c.gen++
	out := make([]aftChange, 0, len(c.marked)+len(c.restate))
	fresh := c.readDirty(a, true, func(old, ne *aftCached) {
		if old != nil || ne != nil {
			out = append(out, aftChange{old, ne})
		}
	})
	if len(out) > 1 && !slices.IsSortedFunc(out, compareAFTChange) {
		// Sorted once here, in the order the change set puts its routes
		// in: aftPatch and reorder then find them sorted, where each
		// sorted a bulk load's batch (72,000 entries) again. A batch
		// written in key order (a bulk load's, by prefix) is sorted
		// already: checked, it is not sorted again (pdqsort took about
		// 7 ms of CPU per 100,000-entry load to find that out).
		slices.SortFunc(out, compareAFTChange)
		fresh = fresh[:0]
		for _, ch := range out {
			if ch.new != nil {
				fresh = append(fresh, ch.new)
			}
		}
	}
	c.readRestate(a, func(e *aftCached) {
		if !e.stated {
			out = append(out, aftChange{e, e})
		}
	})
	c.clearMarks()
	if len(fresh) > 0 || len(c.removed) > 0 {
		c.reorder(fresh)
	}
	return out
}

// readDirty reads again the entries Observe marked, each once, in the
// version a belongs to (each by its keys), calls fn with each one's old
// and new translation (nil: none) and returns the new ones. (A walk of the lists
// instead, for a batch that is most of the AFT, measured no cheaper:
// BenchmarkAFTBulkChange, 72,000 new entries into 28,000, 253-295 ms of
// CPU walking against 287-295 ms looking up.)
func (c *aftCache) readDirty(a kedgetree.Kedge_Aft, full bool, fn func(old, ne *aftCached)) []*aftCached {
	fresh := make([]*aftCached, 0, len(c.marked))
	al := allocator[aftCached]{left: len(c.marked)}
	c.reserve(len(c.marked))
	lists := aftListsOf(a)
	for _, id := range c.marked {
		old := c.byID[id]
		if c.readNow(old) {
			continue // marked before in this pass, and read then
		}
		if old != nil {
			c.remove(old)
		}
		var ne *aftCached
		if in := lists.find(id); in != nil {
			ne = c.read(in, full, &al)
		}
		if ne != nil {
			c.add(ne)
			fresh = append(fresh, ne)
		}
		fn(old, ne)
	}
	return fresh
}

// readNow reports whether e, an entry of byID, was read by this pass
// (changes or entries): its translation is of this generation. An entry
// marked twice and gone has none the second time, and reads as none
// again.
func (c *aftCache) readNow(e *aftCached) bool { return e != nil && e.gen == c.gen }

// aftWalkMin is the smallest share of the entries (1/aftWalkMin) whose
// state is read again by a walk of the lists rather than by lookups; 0
// never walks (BenchmarkAFTBulkChange compares the two).
var aftWalkMin = 4

// walkAFT says whether k of n entries are read by a walk.
func walkAFT(k, n int) bool { return aftWalkMin > 0 && k >= 256 && k >= n/aftWalkMin }

// readRestate reads again whether the entries whose state status changed
// (and whose config did not) have one, and calls fn with each. Observe
// marks only the cached entries that lost their status (those that got
// one take it at once), few but after the state of many entries went:
// then one walk of the lists finds them (BenchmarkAFTBulkChange measured
// the status of 72,000 of 100,000 entries read again at 79-83 ms of CPU
// walking, against 141-145 ms looking each up).
func (c *aftCache) readRestate(a kedgetree.Kedge_Aft, fn func(e *aftCached)) {
	var slow []tree.Ident
	n := 0
	if a.Exists() {
		n = a.Ipv4Entries().Ipv4Entry().Len() + a.Ipv6Entries().Ipv6Entry().Len()
	}
	if !walkAFT(len(c.restate), n) {
		for id := range c.restate {
			slow = append(slow, id)
		}
	} else {
		want := 0
		for id := range c.restate {
			if e := c.byID[id]; e != nil && !c.readNow(e) {
				want++
			}
		}
		hit := make([]*aftCached, 0, want)
		walk := func(in *tree.Inst) {
			id := in.Ident()
			if _, ok := c.restate[id]; !ok {
				return
			}
			if e := c.byID[id]; e != nil && !c.readNow(e) {
				e.stated = restated(in)
				hit = append(hit, e)
			}
		}
		for in := range a.Ipv4Entries().Ipv4Entry().All() {
			walk(in.Inst())
		}
		for in := range a.Ipv6Entries().Ipv6Entry().All() {
			walk(in.Inst())
		}
		if len(hit) < want {
			// Some are not in the tree (gone without their config's
			// deletion observed): the lookup one by one finds none.
			done := make(map[*aftCached]bool, len(hit))
			for _, e := range hit {
				done[e] = true
			}
			for id := range c.restate {
				if e := c.byID[id]; e != nil && !done[e] {
					slow = append(slow, id)
				}
			}
		}
		for _, e := range hit {
			fn(e)
		}
	}
	lists := aftListsOf(a)
	for _, id := range slow {
		e := c.byID[id]
		if e == nil || c.readNow(e) {
			continue
		}
		e.stated = false
		if in := lists.find(id); in != nil {
			e.stated = restated(in)
		}
		fn(e)
	}
}

// clearMarks empties what Observe marked, dropping the buffers a bulk
// commit made big (a cleared map keeps its buckets).
func (c *aftCache) clearMarks() {
	if len(c.marked) > 4096 {
		c.marked = nil
	}
	if len(c.restate) > 4096 {
		c.restate = nil
	}
	clear(c.marked) // the Idents keep their instances' identities alive
	c.marked = c.marked[:0]
	clear(c.restate)
}

// has reports whether a live entry other than self and repl has key.
func (c *aftCache) has(key sortKey, self, repl *aftCached) bool {
	i := sort.Search(len(c.order), func(i int) bool { return compareKeys(c.order[i].key, key) >= 0 })
	for ; i < len(c.order) && compareKeys(c.order[i].key, key) == 0; i++ {
		if e := c.order[i]; e != self && e != repl && !e.dropped {
			return true
		}
	}
	return false
}

// otherHas returns has, for the n changes of one change set (read by
// changes, so the order is up to date): when they are a good share of the
// entries (a bulk load's batch), one pass over the order marks the entries
// that share their key with another, and a change whose new entry is in
// the order (its old one, of the same identity and key, left it) has
// another entry with its key when its new entry is marked; a binary
// search each cost about 30 ms for a batch of 72,000.
func (c *aftCache) otherHas(n int) func(key sortKey, self, repl *aftCached) bool {
	if n < len(c.order)/8 {
		return c.has
	}
	for i, e := range c.order {
		e.shared = i > 0 && compareKeys(c.order[i-1].key, e.key) == 0 ||
			i+1 < len(c.order) && compareKeys(c.order[i+1].key, e.key) == 0
	}
	return func(key sortKey, old, ne *aftCached) bool {
		if ne != nil && !ne.dropped && key == ne.key {
			return ne.shared
		}
		return c.has(key, old, ne)
	}
}

// entries brings the cache in line with a and calls fn with every live
// entry in key order; incremental says whether only the dirty entries
// need reading.
func (c *aftCache) entries(a kedgetree.Kedge_Aft, incremental, full bool, fn func(e *aftCached)) {
	if c.byID == nil {
		c.byID = map[tree.Ident]*aftCached{}
	}
	c.gen++
	var fresh []*aftCached
	if incremental {
		fresh = c.readDirty(a, full, func(_, _ *aftCached) {})
		c.readRestate(a, func(*aftCached) {})
	} else {
		seen := 0
		var al allocator[aftCached]
		walk := func(in *tree.Inst, cfg *tree.Inst, isStated func() bool) {
			if cfg == nil {
				return
			}
			seen++
			if e := c.byID[in.Ident()]; e != nil && e.config == cfg && e.stamp == cfg.Stamp() {
				e.gen = c.gen
				if full {
					e.stated = isStated()
				}
				return
			} else if e != nil {
				c.remove(e)
			}
			if ne := c.read(in, full, &al); ne != nil {
				c.add(ne)
				fresh = append(fresh, ne)
			}
		}
		for in := range a.Ipv4Entries().Ipv4Entry().All() {
			cfg := in.Config()
			var ci *tree.Inst
			if cfg.Exists() {
				ci = cfg.Inst()
			}
			walk(in.Inst(), ci, func() bool { return stated(in.State().Status()) })
		}
		for in := range a.Ipv6Entries().Ipv6Entry().All() {
			cfg := in.Config()
			var ci *tree.Inst
			if cfg.Exists() {
				ci = cfg.Inst()
			}
			walk(in.Inst(), ci, func() bool { return stated(in.State().Status()) })
		}
		if len(c.byID) > seen {
			for _, e := range c.byID {
				if e.gen != c.gen {
					c.remove(e)
				}
			}
		}
	}
	c.clearMarks()
	if len(fresh) > 0 || len(c.removed) > 0 {
		c.reorder(fresh)
	}
	for _, e := range c.order {
		fn(e)
	}
}

// aftLists are the instances holding the IP entries of one version (nil:
// none), found once for the lookups of a batch's entries rather than
// from /kedge/aft again for each.
type aftLists struct{ v4, v6 *tree.Inst }

func aftListsOf(a kedgetree.Kedge_Aft) aftLists {
	if !a.Exists() {
		return aftLists{}
	}
	return aftLists{v4: a.Ipv4Entries().Inst(), v6: a.Ipv6Entries().Inst()}
}

// find returns the IP entry id names in the version l was found in, or
// nil when it is not there (gone, or deleted and created again: a new
// identity).
func (l *aftLists) find(id tree.Ident) *tree.Inst {
	var list *tree.Inst
	switch id.Schema().Path {
	case aftV4Path:
		list = l.v4
	case aftV6Path:
		list = l.v6
	}
	if list == nil {
		return nil
	}
	e := list.Entry(id.Schema(), id.Keys()...)
	if e == nil || e.Ident() != id {
		return nil
	}
	return e
}

// reorder drops the removed entries and merges the fresh ones, sorted,
// into the order (mergeOrder).
func (c *aftCache) reorder(fresh []*aftCached) {
	if !slices.IsSortedFunc(fresh, compareAFTCached) {
		slices.SortFunc(fresh, compareAFTCached)
	}
	if len(fresh)+len(c.removed) <= len(c.order)/16 {
		// A few changes: edited in place, as the route cache's (editOrder).
		c.order = editOrder(c.order, fresh, c.removed, compareAFTCached)
		clear(c.removed)
		c.removed = c.removed[:0]
		return
	}
	out := mergeOrder(c.spare, c.order, fresh, c.removed, func(e *aftCached) bool { return e.dropped }, compareAFTCached)
	clear(c.removed)
	c.removed = c.removed[:0]
	clear(c.order) // the spare buffer must not keep removed entries alive
	c.spare, c.order = c.order[:0], out
}

// compareAFTChange orders changes by their new entry, or their old one
// when they have none.
func compareAFTChange(a, b aftChange) int {
	x, y := a.new, b.new
	if x == nil {
		x = a.old
	}
	if y == nil {
		y = b.old
	}
	return compareAFTCached(x, y)
}

func compareAFTCached(a, b *aftCached) int {
	if c := compareKeys(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.kind, b.kind), strings.Compare(a.prefix, b.prefix))
}
