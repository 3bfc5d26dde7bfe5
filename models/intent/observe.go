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
			c.observeRoute(state, ch, len(changes)-i, &lastRoute)
		case kindPod:
			c.pods.observe(state, ch)
		case kindAFTv4, kindAFTv6, kindAFTMeta:
			c.aft.observe(state, ch, kind, len(changes)-i, &lastAFT)
		}
	}
}

// observeRoute notes a change below a /kedge/routes entry; left is how
// many changes of the commit are left, this one included, and *last the
// entry whose config the commit's change before changed (its keys and
// its config are two instances).
func (c *RouteCache) observeRoute(state bool, ch tree.Change, left int, last *tree.Ident) {
	// State never changes a translation; only the status matters,
	// since the cache remembers which entries have one.
	if state && ch.Node.Path != routeStatusPath {
		return
	}
	id := ch.In
	for !id.IsZero() && id.Schema().Path != routeListPath {
		id = id.Parent()
	}
	if id.IsZero() {
		return
	}
	if state {
		// The change says whether the entry has a status now: a
		// cached entry takes it at once. Only one that lost it is
		// marked, to be reported again (its state put back); a map
		// of every entry a bulk state write stated would stay until
		// the next intent, 46 B a route after a 100,000-route Set.
		e := c.byEntry[id]
		if e != nil {
			e.stated = ch.Val.IsSet()
		}
		if e == nil || e.stated {
			return
		}
		if c.restate == nil {
			c.restate = map[tree.Ident]struct{}{}
		}
		c.restate[id] = struct{}{}
		return
	}
	if id == *last {
		return
	}
	*last = id
	if c.pend == nil {
		// Sized for the rest of the commit being route entries of
		// four leaves or more (their keys, the same in their config,
		// a device or gateway), so a 100,000-route Set's does not grow
		// it step by step.
		c.pend = make([]tree.Ident, 0, min(max(left/4, 1), 1<<20))
	}
	c.pend = append(c.pend, id)
}

// pending is how many entries Observe noted that are not marked yet.
func (c *RouteCache) pending() int { return len(c.pend) - c.pendAt }

// absorb marks up to k of the entries Observe noted dirty (all when k <
// 0), in the order it noted them. Noting is an append, marking a map
// probe: a 100,000-route Set's entries are marked part by part, each by
// the intent that reads them, pipelined with the backend programming the
// part before, instead of all before the first part, on the commit's
// way to the kernel.
func (c *RouteCache) absorb(k int) {
	if c.pending() == 0 || k == 0 {
		return
	}
	if room := c.pending(); len(c.dirty) == 0 {
		if k > 0 {
			room = min(room, k)
		}
		if c.dirty == nil || room > c.dirtyRoom {
			c.dirty, c.dirtyRoom = make(map[tree.Ident]struct{}, room), room
		}
	}
	i := c.pendAt
	for ; i < len(c.pend) && k != 0; i++ {
		id := c.pend[i]
		if _, ok := c.dirty[id]; ok {
			continue // noted by two commits
		}
		c.dirty[id] = struct{}{}
		if c.parted {
			c.queue = append(c.queue, id)
		} else {
			c.marked = append(c.marked, id)
		}
		k--
	}
	clear(c.pend[c.pendAt:i]) // keep no entry alive
	c.pendAt = i
}
