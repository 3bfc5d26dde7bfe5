package intent

import (
	"net/netip"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// RouteCache makes the reconciler's routes intent cheap after a small
// change to a big table. It keeps, between two intents over the same
// tree, the translation of every /kedge/routes entry (remembered with its
// config instance's tree.Stamp, so an entry that changed or is new is read
// again) and the entries in output order (so only new entries are sorted,
// then merged). The accord's decisions, pods and overlay routes are
// recomputed every time: they are few, or depend on more than one entry.
//
// The cache holds *tree.Inst pointers, read only inside the intent, which
// runs under the store's lock. Entries gone from the tree are dropped by
// the first intent that no longer sees them. A RouteCache is not safe for
// concurrent use; give each caller its own.
type RouteCache struct {
	byConfig map[*tree.Inst]*cachedRoute
	order    []*cachedRoute // live entries in output order
	gen      uint64         // this intent's generation; entries it saw carry it
	leaves   *routeNodes
	// schema nodes of an entry's config and state containers and of the
	// state's status leaf, looked up once
	config, state, status *tree.Node
	// out and merged are the returned set's route and origin slices,
	// reused by the next intent; spare is the order's other buffer.
	out, merged outBuf
	spare       []*cachedRoute
}

// translated is what one route entry's config says, before any accord.
type translated struct {
	route   route.Route
	origin  Origin // Stated is filled per intent, not cached
	subject subject
	err     error
}

type cachedRoute struct {
	translated
	key           sortKey
	entry, config *tree.Inst
	stamp, gen    uint64
}

// Routes is the package's Routes, reusing the translations and order of
// unchanged entries. The set it returns is valid until the next call:
// its route and origin slices are reused (route.Backend.Set copies what
// it keeps), which keeps a one-route reconcile from allocating the whole
// table again.
func (c *RouteCache) Routes(t *tree.Tree, a accord.Accord) (RouteSet, error) {
	if len(c.byConfig) == 0 {
		n := 0
		if k := t.Root().Sub("kedge"); k != nil && k.Sub("routes") != nil {
			n = k.Sub("routes").Len("route")
		}
		c.byConfig = make(map[*tree.Inst]*cachedRoute, n)
	}
	c.gen++
	return routes(t, a, true, c)
}

// walk offers every /kedge/routes entry to consider, in output order.
func (c *RouteCache) walk(rt *tree.Inst, full bool, set *RouteSet, consider func(route.Route, Origin, subject)) {
	var fresh []*cachedRoute
	var slab []cachedRoute
	chunk := 1
	seen := 0
	rt.Entries("route", func(in *tree.Inst) bool {
		if c.config == nil {
			c.config, c.state = in.Schema().Child("config"), in.Schema().Child("state")
			c.status = c.state.Child("status")
		}
		cfg := in.SubAt(c.config)
		if cfg == nil {
			return true
		}
		seen++
		e := c.byConfig[cfg]
		if e != nil && e.stamp == cfg.Stamp() && e.entry == in {
			e.gen = c.gen
			return true
		}
		if c.leaves == nil {
			c.leaves = newRouteNodes(cfg.Schema())
		}
		if len(slab) == 0 {
			// Entries come from chunks, not one allocation each: a bulk
			// Set of 100,000 routes would otherwise make 100,000 objects
			// for the collector to trace. Chunks start small and double,
			// since a chunk lives as long as any entry in it.
			slab = make([]cachedRoute, chunk)
			chunk = min(2*chunk, 4096)
		}
		ne := &slab[0]
		slab = slab[1:]
		*ne = cachedRoute{translated: c.leaves.translate(cfg), entry: in, config: cfg, stamp: cfg.Stamp(), gen: c.gen}
		ne.key = keyOf(ne.route.Dst, ne.origin.Table)
		if e != nil {
			e.gen = 0 // replaced: dropped from the order below
		}
		c.byConfig[cfg] = ne
		fresh = append(fresh, ne)
		return true
	})
	if len(fresh) > 0 || len(c.order) != seen {
		c.reorder(fresh)
	}
	for _, e := range c.order {
		o := e.origin
		if full {
			st := e.entry.SubAt(c.state)
			o.Stated = st != nil && st.Leaf(c.status).IsSet()
		}
		if e.err != nil {
			if full {
				set.Invalid = append(set.Invalid, Withheld{Dst: e.route.Dst, Table: o.Table, Reason: e.err.Error(), Origin: o})
			}
			continue
		}
		consider(e.route, o, e.subject)
	}
}

// reorder drops the entries this intent did not see and merges the fresh
// ones, sorted, into the order.
func (c *RouteCache) reorder(fresh []*cachedRoute) {
	// Sort keys by value, not through the pointers: after a bulk Set
	// fresh holds every entry, and chasing pointers dominates the sort.
	order := sortOrder(len(fresh), func(i int) (netip.Prefix, uint32) { return fresh[i].route.Dst, fresh[i].origin.Table },
		func(i, j int) int { return compareOrigin(fresh[i].origin, fresh[j].origin) })
	permute(order, func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	out := c.spare[:0]
	j := 0
	for _, e := range c.order {
		if e.gen != c.gen {
			if c.byConfig[e.config] == e {
				delete(c.byConfig, e.config)
			}
			continue
		}
		for j < len(fresh) && compareCached(fresh[j], e) < 0 {
			out = append(out, fresh[j])
			j++
		}
		out = append(out, e)
	}
	out = append(out, fresh[j:]...)
	clear(c.order) // the spare buffer must not keep dropped entries alive
	c.spare, c.order = c.order[:0], out
}

func compareCached(a, b *cachedRoute) int {
	if c := compareKeys(a.key, b.key); c != 0 {
		return c
	}
	return compareOrigin(a.origin, b.origin)
}
