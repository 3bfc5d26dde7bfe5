package intent

import (
	"strings"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// changeKind is what RouteCache.Observe makes of a change, by the schema
// node it changed.
type changeKind uint8

const (
	kindOther   changeKind = iota
	kindRoute              // below a /kedge/routes entry
	kindPod                // below a /kedge/pods entry
	kindAFTv4              // below a gRIBI IPv4 entry
	kindAFTv6              // below a gRIBI IPv6 entry
	kindAFTMeta            // below gRIBI's next hops, groups or sessions
)

// nodeKinds remembers each schema node's changeKind. A bulk commit's
// changes are a handful of schema nodes over and over (a 100,000-route
// Set's, about 500,000 changes of five leaves); comparing each change's
// path with every prefix Observe looks for, two of them built anew per
// change, was about a third of the reconciler's reading of that commit,
// which comes before its first route can reach the kernel.
type nodeKinds map[*tree.Node]changeKind

func (m *nodeKinds) of(n *tree.Node) changeKind {
	if k, ok := (*m)[n]; ok {
		return k
	}
	if *m == nil {
		*m = nodeKinds{}
	}
	k := kindOf(n.Path)
	(*m)[n] = k
	return k
}

// kindOf is the changeKind of a schema path.
func kindOf(p string) changeKind {
	switch {
	case strings.HasPrefix(p, routeListPath+"/"):
		return kindRoute
	case strings.HasPrefix(p, podListPath+"/"):
		return kindPod
	case strings.HasPrefix(p, aftV4Below):
		return kindAFTv4
	case strings.HasPrefix(p, aftV6Below):
		return kindAFTv6
	}
	for _, m := range aftMetaPaths {
		if strings.HasPrefix(p, m) {
			return kindAFTMeta
		}
	}
	return kindOther
}

// Observe tells the cache of one commit from the store's feed (sequence
// number, whether it is a state commit, its changes), in feed order. A
// caller that observes must observe every commit; Lost says it could not.
//
// The route reconciler calls it for every commit before its intent, a
// bulk Set's included, so it costs what the commit holds and no more than
// it must: a config change is looked at only when it is the first of its
// instance (the leaves of one entry's config come one after another, and
// every one of them marks the same entry), and its kind is its schema
// node's, remembered.
func (c *RouteCache) Observe(seq uint64, state bool, changes []tree.Change) {
	if seq <= c.observed {
		return // the last intent read a tree that already had it
	}
	if seq != c.observed+1 {
		c.synced = false // a commit went by unseen
	}
	c.observed = seq
	if !c.synced {
		return // the next intent walks every entry anyway
	}
	var lastIn, lastRoute, lastAFT tree.Ident
	first, noted, cursor := -1, 0, 0
	for i, ch := range changes {
		if !state {
			// State changes are each looked at (whether a status was
			// set or removed); config ones mark their entry, which the
			// change before marked already if it had the same parent.
			if ch.In == lastIn && i > 0 {
				continue
			}
			lastIn = ch.In
		}
		switch kind := c.kinds.of(ch.Node); kind {
		case kindRoute:
			if state {
				c.observeRouteState(ch, &cursor)
			} else if id := routeEntry(ch); !id.IsZero() && id != lastRoute {
				lastRoute = id
				if first < 0 {
					first = i
				}
				noted++
			}
		case kindPod:
			c.pods.observe(state, ch)
		case kindAFTv4, kindAFTv6, kindAFTMeta:
			c.aft.observe(state, ch, kind, len(changes)-i, &lastAFT)
		}
	}
	if noted > 0 {
		// The route entries are marked by the intent that reads them
		// (absorb), from the commit's changes, which the feed holds
		// anyway.
		c.pend = append(c.pend, pendCommit{changes: changes, at: first})
		c.pendN += noted
	}
}

// pendCommit is a config commit whose route entries Observe counted and
// absorb has not marked yet: its changes from at on, and where absorb's
// reading of them stands (the parent and the entry of the change before,
// as Observe's loop compares them).
type pendCommit struct {
	changes       []tree.Change
	at            int
	lastIn, entry tree.Ident
}

// routeEntry is the /kedge/routes entry a change below one is in (zero if
// none).
func routeEntry(ch tree.Change) tree.Ident {
	id := ch.In
	for !id.IsZero() && id.Schema().Path != routeListPath {
		id = id.Parent()
	}
	return id
}

// observeRouteState notes a state change below a /kedge/routes entry;
// cursor is where in the order the entry after the last one found is.
func (c *RouteCache) observeRouteState(ch tree.Change, cursor *int) {
	// State never changes a translation; only the status matters,
	// since the cache remembers which entries have one.
	if ch.Node.Path != routeStatusPath {
		return
	}
	id := routeEntry(ch)
	if id.IsZero() {
		return
	}
	// A map of every entry a bulk state write stated would stay until
	// the next intent, 46 B a route after a 100,000-route Set: only an
	// entry that lost its status is marked.
	var stated *bool
	if e := c.entryAfter(id, cursor); e != nil {
		stated = &e.stated
	}
	noteStated(&c.restate, id, stated, ch.Val.IsSet())
}

// entryAfter is byEntry[id], tried first at the cursor's place in the
// order: the state writer states a change's routes in the order's order,
// and after a bulk load its state commit names all 100,000, one after
// another. Probing the map for each, a cache miss or two apiece, was
// 7-8 ms the commit (BenchmarkObserveBulk/observe-state) and up to 26 ms
// in the daemon, which the first Set after the load waited behind;
// walking the order beside the commit reads memory in sequence. A commit
// in another order only falls back to the map. A dropped entry is not
// its id's (a replaced one's successor has the id too).
func (c *RouteCache) entryAfter(id tree.Ident, cursor *int) *cachedRoute {
	if i := *cursor; i < len(c.order) {
		if e := c.order[i]; e.id == id && !e.dropped {
			*cursor = i + 1
			return e
		}
	}
	return c.byEntry[id]
}

// noteStated applies a status change to a cached entry (stated is its
// flag, nil when the entry is not cached): it takes whether the entry has
// a status now at once, and one that lost it is put in restate, to be
// reported again (its state put back).
func noteStated(restate *map[tree.Ident]struct{}, id tree.Ident, stated *bool, has bool) {
	if stated == nil {
		return
	}
	*stated = has
	if has {
		return
	}
	if *restate == nil {
		*restate = map[tree.Ident]struct{}{}
	}
	(*restate)[id] = struct{}{}
}

// pending is about how many entries Observe noted that are not marked
// yet (an entry two commits changed counts twice); 0 when none are.
func (c *RouteCache) pending() int { return c.pendN }

// absorb marks up to k of the entries Observe noted dirty (all when k <
// 0), in the order the commits changed them. Observe only counts them,
// with no allocation and no map probe: the marking (a probe and an
// insert per entry) is done part by part for a 100,000-route Set, each
// by the intent that reads them, pipelined with the backend programming
// the part before, instead of on the commit's way to the kernel, where
// a goroutine allocating during the collection the Set's decoding
// started also pays for the collector's marking.
func (c *RouteCache) absorb(k int) {
	if c.pendN == 0 || k == 0 {
		return
	}
	if room := c.pendN; len(c.dirty) == 0 && !c.oneCommit {
		if k > 0 {
			room = min(room, k)
		}
		if c.dirty == nil || room > c.dirtyRoom {
			c.dirty, c.dirtyRoom = make(map[tree.Ident]struct{}, room), room
		}
	}
	for len(c.pend) > 0 && k != 0 {
		pc := &c.pend[0]
		i := pc.at
		for ; i < len(pc.changes) && k != 0; i++ {
			ch := pc.changes[i]
			if ch.In == pc.lastIn && i > 0 {
				continue
			}
			pc.lastIn = ch.In
			if c.kinds.of(ch.Node) != kindRoute {
				continue
			}
			id := routeEntry(ch)
			if id.IsZero() || id == pc.entry {
				continue
			}
			pc.entry = id
			c.pendN--
			if c.oneCommit {
				c.queue = append(c.queue, id) // met once (onecommit.go)
				k--
				continue
			}
			// One insert, whose effect on the count says whether the
			// entry was new, in place of a probe and an insert.
			d := len(c.dirty)
			if c.dirty[id] = struct{}{}; len(c.dirty) == d {
				continue // changed by two commits
			}
			if c.parted {
				c.queue = append(c.queue, id)
			} else {
				c.marked = append(c.marked, id)
			}
			k--
		}
		pc.at = i
		if i == len(pc.changes) {
			c.pend[0] = pendCommit{} // keep no commit alive
			c.pend = c.pend[1:]
		}
	}
	if len(c.pend) == 0 {
		c.pend, c.pendN = nil, 0
	}
}
