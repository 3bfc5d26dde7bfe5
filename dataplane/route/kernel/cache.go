package kernel

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"github.com/guildhouse-co/kedge/internal/maproom"
)

// routeCache is Kedge's routes in the kernel by key, stored compactly:
// at 100,000 routes the backend keeps it for good (Patch plans from it),
// and a map of route.Key to rtnl.Route cost about 245 B a route where
// this costs about 100. Routes it cannot store compactly (a zoned or
// mapped address, a multipath route or one with next hops) are kept
// whole beside.
//
// It also counts the routes over each link (a multipath route once per
// next hop) and those with a source address, so a link going down or away that carries none of Kedge's
// routes (a new pod's veth before its route, another pod's) leaves the
// cache as it is, and one that carries some costs only those.
type routeCache struct {
	m    map[cacheKey]cacheVal
	rare map[cacheKey]rtnl.Route
	// onLink counts the cached routes by outgoing interface index: for
	// a route given a gateway alone, the device the kernel resolved
	// (learnt from its echo of the add, or from a dump), and so for each
	// next hop of a multipath route. 0 counts those whose device the
	// cache does not know: a route or next hop whose echo never came.
	onLink map[int32]int32
	// sourced counts the cached routes with a source address.
	sourced int32
	// few indexes the plain routes (those in m) of each link that has
	// carried at most fewPerLink of them since it last carried none: a
	// pod's veth going finds its route here instead of a walk of the
	// whole cache (about 0.8 ms at 100,000 routes). crowded are the links
	// past that (an uplink), walked as before until they carry none.
	few     map[int32][]cacheKey
	crowded map[int32]bool
	// room is how many routes m was made for or has held, whichever is
	// more: a map keeps its room when routes leave it (see reserve).
	room maproom.Room
}

// fewPerLink bounds a link's index in few: pods have a route or two.
const fewPerLink = 8

type cacheKey struct {
	addr          [16]byte
	table, metric uint32
	bits          uint8
	v6            bool
}

type cacheVal struct {
	gw, src                  [16]byte
	oif                      int32
	gwSet, srcSet, gw6, src6 bool
	scope, protocol, rtype   uint8
}

func newRouteCache(n int) *routeCache {
	return &routeCache{m: make(map[cacheKey]cacheVal, n), room: maproom.Room(n), onLink: map[int32]int32{}, few: map[int32][]cacheKey{}, crowded: map[int32]bool{}}
}

// index adds the plain route k over link oif to few.
func (c *routeCache) index(k cacheKey, oif int32) {
	if c.crowded[oif] {
		return
	}
	keys := c.few[oif]
	if len(keys) == fewPerLink {
		delete(c.few, oif)
		c.crowded[oif] = true
		return
	}
	c.few[oif] = append(keys, k)
}

// unindex removes the plain route k over link oif from few; a crowded
// link that carries no route any more is indexed again from its next.
func (c *routeCache) unindex(k cacheKey, oif int32) {
	if keys, ok := c.few[oif]; ok {
		if i := slices.Index(keys, k); i >= 0 {
			keys = slices.Delete(keys, i, i+1)
		}
		if len(keys) == 0 {
			delete(c.few, oif)
		} else {
			c.few[oif] = keys
		}
	}
	if c.crowded[oif] && c.onLink[oif] == 0 {
		delete(c.crowded, oif)
	}
}

// count adds d to the routes counted over each link r uses.
func (c *routeCache) count(r rtnl.Route, d int32) {
	if r.Src.IsValid() {
		c.sourced += d
	}
	if len(r.Nexthops) == 0 {
		c.countLink(int32(r.OIF), d)
	}
	for _, h := range r.Nexthops {
		c.countLink(int32(h.OIF), d)
	}
}

func (c *routeCache) countLink(oif, d int32) {
	if n := c.onLink[oif] + d; n > 0 {
		c.onLink[oif] = n
	} else {
		delete(c.onLink, oif)
	}
}

// onLinkCount is the number of cached routes over link index.
func (c *routeCache) onLinkCount(index int) int {
	if index == 0 || index != int(int32(index)) {
		return 0
	}
	return int(c.onLink[int32(index)])
}

// addrFree reports whether deleting an address of link index leaves
// every cached route as it is: none is over that link (the last IPv4
// address of a link going takes its routes, as the link going down
// does) or the link is down (its routes went or were marked dead when
// it went down, and a link being deleted goes down before its addresses
// go), none has a source address (IPv4 routes using the address as
// their source go, IPv6 ones lose it), and none has a link the kernel
// resolved from a gateway that the cache does not know, which may be
// that link (a gateway route's or a multipath route's next hop's learnt
// device counts as a named one's; resolve.go). A pod's veth going (its
// IPv6 link-local address with it, after its routes) is such a
// deletion.
func (c *routeCache) addrFree(index int, down bool) bool {
	return c != nil && index != 0 && (c.onLinkCount(index) == 0 || down) && c.sourced == 0 && c.onLink[0] == 0
}

// forgetLink removes the routes over link index that the kernel removed
// with it (IPv4 ones silently, IPv6 ones with a notification that may
// come after the link's), calling gone with the key of each route it
// removed or changed. away is the link deleted rather than set down;
// down reports whether a link is known to be down.
//
// A multipath route follows what the kernel does (checked on Linux 6.18,
// two veths, one next hop on each): set down, a next hop's link leaves
// the route as it was, the next hop marked dead and alive again once the
// link is up, unless every next hop's link is down, when the route goes
// (IPv4 silently, IPv6 a deletion notification per next hop); deleted,
// the link takes an IPv4 route whole, silently, and an IPv6 route's
// next hops over it, each with a notification (sent before the link's,
// see forgetRoute), leaving a route of one next hop a single path. It
// reports false, having removed nothing, when it cannot tell: a
// multipath route with a next hop whose device the cache does not know,
// or another uncommon route over the link.
func (c *routeCache) forgetLink(index int, away bool, down func(int) bool, gone func(route.Key)) bool {
	type change struct {
		k     cacheKey
		r     rtnl.Route
		whole bool
	}
	var changes []change
	kept := 0 // next hops over the link that stay cached
	for k, r := range c.rare {
		if !usesLink(r, index) {
			continue
		}
		if len(r.Nexthops) == 0 {
			return false
		}
		all := true // every next hop's link is down
		for _, h := range r.Nexthops {
			if h.OIF == 0 {
				return false
			}
			all = all && (h.OIF == index || down(h.OIF))
		}
		switch {
		case all || (away && r.Dst.Addr().Is4()):
			changes = append(changes, change{k, r, true})
		case away:
			changes = append(changes, change{k, r, false})
		default:
			for _, h := range r.Nexthops {
				if h.OIF == index {
					kept++
				}
			}
		}
	}
	for _, ch := range changes {
		if ch.whole {
			c.uncount(ch.k)
			delete(c.rare, ch.k)
		} else {
			c.dropHops(ch.k, ch.r, func(h rtnl.Nexthop) bool { return h.OIF == index })
		}
		gone(kernelKey(ch.r))
	}
	n := c.onLinkCount(index) - kept // the plain routes over the link
	oif := int32(index)
	if keys, ok := c.few[oif]; ok && len(keys) == n {
		// Every plain route over the link is indexed: no walk.
		for _, k := range slices.Clone(keys) {
			v := c.m[k]
			c.uncount(k)
			delete(c.m, k)
			gone(kernelKey(v.route(k)))
		}
		return true
	}
	for k, v := range c.m {
		if n <= 0 {
			break
		}
		if v.oif == oif {
			n--
			c.uncount(k)
			delete(c.m, k)
			gone(kernelKey(v.route(k)))
		}
	}
	return true
}

// dropHops caches r, cached under k, without the next hops drop picks:
// as the kernel leaves it, a single path when one next hop is left,
// nothing when none is.
func (c *routeCache) dropHops(k cacheKey, r rtnl.Route, drop func(rtnl.Nexthop) bool) {
	var rest []rtnl.Nexthop
	for _, h := range r.Nexthops {
		if !drop(h) {
			rest = append(rest, h)
		}
	}
	switch len(rest) {
	case 0:
		c.uncount(k)
		delete(c.rare, k)
	case 1:
		r.Multipath, r.Nexthops, r.Gateway, r.OIF = false, nil, rest[0].Gateway, rest[0].OIF
		c.put(r)
	default:
		r.Nexthops = rest
		c.put(r)
	}
}

// forgetRoute removes the route the kernel says it deleted (r, a
// deletion notification). followed reports whether the cache follows it
// precisely: it did not hold the key, or held a plain route over the
// same link (removed), or r is a single path of an IPv6 multipath route
// it holds (the kernel deleting one next hop, as its link goes: that
// next hop is removed). Anything else (a multipath notification, a
// route over another link) is not followed.
func (c *routeCache) forgetRoute(r rtnl.Route) (followed, removed bool) {
	ck := keyOfRoute(kernelKey(r))
	if old, ok := c.rare[ck]; ok {
		if r.Multipath || len(r.Nexthops) > 0 || !r.Dst.Addr().Is6() || r.OIF == 0 {
			return false, false
		}
		hop := func(h rtnl.Nexthop) bool { return h.Gateway == r.Gateway && h.OIF == r.OIF }
		if !slices.ContainsFunc(old.Nexthops, hop) {
			return false, false
		}
		c.dropHops(ck, old, hop)
		return true, true
	}
	v, ok := c.m[ck]
	if !ok {
		return true, false
	}
	if r.Multipath || len(r.Nexthops) > 0 || int(v.oif) != r.OIF {
		return false, false
	}
	c.uncount(ck)
	delete(c.m, ck)
	return true, true
}

func usesLink(r rtnl.Route, index int) bool {
	if r.OIF == index {
		return true
	}
	for _, h := range r.Nexthops {
		if h.OIF == index {
			return true
		}
	}
	return false
}

// uncount removes the route cached under k, if any, from the counts.
func (c *routeCache) uncount(k cacheKey) {
	if v, ok := c.m[k]; ok {
		c.countLink(v.oif, -1)
		c.unindex(k, v.oif)
		if v.srcSet {
			c.sourced--
		}
		return
	}
	if r, ok := c.rare[k]; ok {
		c.count(r, -1)
	}
}

func keyOfRoute(k route.Key) cacheKey {
	a := k.Dst.Addr()
	return cacheKey{addr: a.As16(), table: k.Table, metric: k.Metric, bits: uint8(k.Dst.Bits()), v6: a.Is6()}
}

// plain reports whether a is stored exactly by its 16 bytes and family.
func plain(a netip.Addr) bool { return !a.IsValid() || (a.Zone() == "" && !a.Is4In6()) }

func (c *routeCache) len() int { return len(c.m) + len(c.rare) }

// reserve makes room for n more routes at once when that at least
// doubles the cache (a bulk change's batch: 72,000 routes into 28,000)
// and the map never held as many. Grown a route at a time, the map
// allocated about twice its final size on the way (20 MB over a
// 100,000-entry gRIBI load) and rehashed every route at each step.
func (c *routeCache) reserve(n int) { c.m = maproom.Reserve(c.m, &c.room, n) }

func (c *routeCache) put(r rtnl.Route) {
	k := keyOfRoute(kernelKey(r))
	c.uncount(k)
	c.store(k, r, true)
}

// add caches r, whose key the cache does not hold: a route a Patch
// planned as a create, having found no route of its key here (the cache
// does not change between the plan and the adds' outcome). Unlike put
// it does not look for a route of the key to replace: for a bulk load's
// 100,000 new routes that was two map lookups each that found nothing
// (BenchmarkPatchBulkGatewayOnly).
func (c *routeCache) add(r rtnl.Route) { c.store(keyOfRoute(kernelKey(r)), r, false) }

// store caches r under k; held says the cache may hold a route of k
// (counted out already) in either map.
func (c *routeCache) store(k cacheKey, r rtnl.Route, held bool) {
	c.count(r, 1)
	if r.Multipath || len(r.Nexthops) > 0 || !plain(r.Dst.Addr()) || !plain(r.Gateway) || !plain(r.Src) || r.OIF != int(int32(r.OIF)) {
		if held {
			delete(c.m, k)
		}
		if c.rare == nil {
			c.rare = map[cacheKey]rtnl.Route{}
		}
		c.rare[k] = r
		return
	}
	if held {
		delete(c.rare, k)
	}
	c.index(k, int32(r.OIF))
	c.m[k] = cacheVal{gw: r.Gateway.As16(), src: r.Src.As16(), oif: int32(r.OIF), gwSet: r.Gateway.IsValid(), srcSet: r.Src.IsValid(),
		gw6: r.Gateway.Is6(), src6: r.Src.Is6(), scope: r.Scope, protocol: r.Protocol, rtype: r.Type}
	c.room.Held(len(c.m))
}

func (c *routeCache) get(k route.Key) (rtnl.Route, bool) {
	ck := keyOfRoute(k)
	v, ok := c.m[ck]
	if !ok {
		r, ok := c.rare[ck]
		return r, ok
	}
	return v.route(ck), true
}

func (c *routeCache) has(k route.Key) bool {
	ck := keyOfRoute(k)
	if _, ok := c.m[ck]; ok {
		return true
	}
	_, ok := c.rare[ck]
	return ok
}

func (c *routeCache) del(k route.Key) {
	ck := keyOfRoute(k)
	c.uncount(ck)
	delete(c.m, ck)
	delete(c.rare, ck)
}

// all yields every cached route.
func (c *routeCache) all() iter.Seq2[route.Key, rtnl.Route] {
	return func(yield func(route.Key, rtnl.Route) bool) {
		for k, v := range c.m {
			r := v.route(k)
			if !yield(kernelKey(r), r) {
				return
			}
		}
		for _, r := range c.rare {
			if !yield(kernelKey(r), r) {
				return
			}
		}
	}
}

func addrOf(b [16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[12:]))
}

func (v cacheVal) route(k cacheKey) rtnl.Route {
	r := rtnl.Route{Dst: netip.PrefixFrom(addrOf(k.addr, k.v6), int(k.bits)), OIF: int(v.oif), Table: k.table,
		Priority: k.metric, Scope: v.scope, Protocol: v.protocol, Type: v.rtype}
	if v.gwSet {
		r.Gateway = addrOf(v.gw, v.gw6)
	}
	if v.srcSet {
		r.Src = addrOf(v.src, v.src6)
	}
	return r
}
