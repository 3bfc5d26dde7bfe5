package kernel

import (
	"cmp"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// lastSet is the previous Set's Config routes, normalized routes and
// outcome. ok says the fast path may start from it: that Set sent every
// add and deleted every stale route, nothing is held, and the route cache
// stayed valid, so the kernel held exactly its installed routes.
type lastSet struct {
	ok        bool
	ordered   bool // its routes were in strict key order
	routes    []route.Route
	norm      []route.Route
	status    []route.RouteStatus
	linkEpoch uint64
}

// fastPlan plans a Set from the previous one instead of from scratch,
// when both Configs list their routes in key order (table, family,
// address, prefix length, metric: the order the routes intent produces).
// A route equal to the previous Config's route at the merge position and
// installed then is installed now: the monitor saw nobody touch the
// kernel, and device names resolve as before. So a one-route change to a
// 100,000-route Config costs one comparison per unchanged route instead of
// three hash lookups, and stale routes are the previous ones the merge
// passes by. This is one of the route reconciler's three speed-ups, each
// behind one seam (models/intent's RouteCache, this, the routes
// component's state writer); BenchmarkSingleRouteSet in this package and
// BenchmarkRouteSingleInto100k in tests/ show what it saves.
//
// It reports false, having planned nothing, when it cannot tell: out of
// order or duplicate keys, a route failing the checks, a changed link list
// or kernel cache; Set then plans in full.
func (b *Backend) fastPlan(routes []route.Route, index map[string]int, kernel *routeCache, p *routePlan) bool {
	pv := &b.prev
	if !pv.ok || b.held != nil || b.dumped || b.linkEpoch != pv.linkEpoch || b.cache == nil {
		return false
	}
	var last route.Key
	first := true
	ordered := func(k route.Key) bool {
		ok := first || compareKey(last, k) < 0
		last, first = k, false
		return ok
	}
	j := 0
	for i, r := range routes {
		if j < len(pv.routes) && pv.status[j].State == route.StateInstalled && r.Equal(pv.routes[j]) {
			n := pv.norm[j]
			if !ordered(route.Key{Table: n.Table, Dst: n.Dst, Metric: n.Metric}) {
				return false
			}
			p.norm[i], p.st[i] = n, route.RouteStatus{State: route.StateInstalled}
			j++
			continue
		}
		n := r.Normalize()
		if !n.Dst.IsValid() || r.Check() != nil {
			return false // the full plan reports it
		}
		k := route.Key{Table: n.Table, Dst: n.Dst, Metric: n.Metric}
		if !ordered(k) {
			return false
		}
		// Previous routes ordered before k are gone from the Config.
		for ; j < len(pv.norm); j++ {
			pn := pv.norm[j]
			pk := route.Key{Table: pn.Table, Dst: pn.Dst, Metric: pn.Metric}
			c := compareKey(pk, k)
			if c > 0 {
				break
			}
			if c == 0 {
				j++ // the same key, changed or failed before: planned below
				break
			}
			if kr, ok := kernel.get(pk); ok {
				p.stale = append(p.stale, kr)
			}
		}
		p.norm[i] = n
		b.planRoute(i, r, n, index, kernel, p)
	}
	p.ordered = true
	for ; j < len(pv.norm); j++ {
		pn := pv.norm[j]
		if kr, ok := kernel.get(route.Key{Table: pn.Table, Dst: pn.Dst, Metric: pn.Metric}); ok {
			p.stale = append(p.stale, kr)
		}
	}
	return true
}

// compareKey orders keys by table, family (IPv4 first), address, prefix
// length and metric.
func compareKey(a, b route.Key) int {
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Dst.Bits(), b.Dst.Bits()), cmp.Compare(a.Metric, b.Metric))
}
