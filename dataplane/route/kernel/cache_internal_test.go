package kernel

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"github.com/guildhouse-co/kedge/internal/maproom"
)

// TestRouteCacheRoundTrip: every route the cache stores comes back
// exactly, compact or kept whole (multipath or with next hops, a mapped or zoned address),
// and replacing or deleting a key leaves no trace of the old route.
func TestRouteCacheRoundTrip(t *testing.T) {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	routes := []rtnl.Route{
		{Dst: p("10.0.0.0/24"), OIF: 3, Table: 254, Scope: 253, Protocol: 107, Type: 1},
		{Dst: p("10.0.1.0/24"), Gateway: a("10.0.0.2"), Src: a("10.0.0.1"), Table: 100, Priority: 7, Protocol: 107, Type: 1},
		{Dst: p("10.0.2.0/24"), Gateway: a("fe80::1"), OIF: 2, Table: 254, Protocol: 107, Type: 1}, // IPv6 next hop of an IPv4 route
		{Dst: p("fd00::/64"), Gateway: a("fd00::2"), Table: 254, Priority: 1024, Protocol: 107, Type: 1},
		{Dst: p("10.0.3.0/24"), Table: 254, Multipath: true, Protocol: 107, Type: 1},
		{Dst: p("10.0.6.0/24"), Table: 254, Protocol: 107, Type: 1, Nexthops: []rtnl.Nexthop{{Gateway: a("10.0.0.2"), Hops: 1}, {OIF: 3}}},
		{Dst: p("10.0.4.0/24"), Gateway: a("::ffff:10.0.0.2"), Table: 254, Protocol: 107, Type: 1},
		{Dst: p("10.0.5.0/24"), Gateway: a("fe80::1%eth0"), Table: 254, Protocol: 107, Type: 1},
	}
	c := newRouteCache(0)
	for _, r := range routes {
		c.put(r)
	}
	if c.len() != len(routes) {
		t.Fatalf("len %d, want %d", c.len(), len(routes))
	}
	for _, r := range routes {
		got, ok := c.get(kernelKey(r))
		if !ok || !reflect.DeepEqual(got, r) {
			t.Errorf("get %s = %+v %t, want %+v", r.Dst, got, ok, r)
		}
	}
	n := 0
	for k, r := range c.all() {
		if k != kernelKey(r) {
			t.Errorf("all: key %v for %+v", k, r)
		}
		n++
	}
	if n != len(routes) {
		t.Errorf("all yielded %d routes, want %d", n, len(routes))
	}
	// Room made for a bulk batch keeps every route.
	c.reserve(maproom.Min)
	for _, r := range routes {
		if got, ok := c.get(kernelKey(r)); !ok || !reflect.DeepEqual(got, r) || c.len() != len(routes) {
			t.Errorf("after reserve: get %s = %+v %t, len %d", r.Dst, got, ok, c.len())
		}
	}
	// A compact route replaced by one kept whole, and back; then deleted.
	mp := routes[0]
	mp.Multipath = true
	c.put(mp)
	if got, _ := c.get(kernelKey(mp)); !reflect.DeepEqual(got, mp) || c.len() != len(routes) {
		t.Errorf("after replacing with multipath: %+v, len %d", got, c.len())
	}
	c.put(routes[0])
	if got, _ := c.get(kernelKey(mp)); !reflect.DeepEqual(got, routes[0]) || c.len() != len(routes) {
		t.Errorf("after replacing back: %+v, len %d", got, c.len())
	}
	for _, r := range routes {
		c.del(kernelKey(r))
		if c.has(kernelKey(r)) {
			t.Errorf("%s still cached after del", r.Dst)
		}
	}
	if c.len() != 0 {
		t.Errorf("len %d after deleting all", c.len())
	}
}

// TestRouteCacheCountsLinks: the per-link counts follow puts, replacements
// onto another link, multipath next hops and deletes, so a link event
// knows whether Kedge has routes over the link.
func TestRouteCacheCountsLinks(t *testing.T) {
	c := newRouteCache(0)
	a := rtnl.Route{Dst: netip.MustParsePrefix("10.1.0.0/24"), OIF: 3, Table: 254}
	b := rtnl.Route{Dst: netip.MustParsePrefix("10.2.0.0/24"), OIF: 3, Table: 254}
	mp := rtnl.Route{Dst: netip.MustParsePrefix("10.3.0.0/24"), Table: 254, Multipath: true,
		Nexthops: []rtnl.Nexthop{{OIF: 4}, {OIF: 5}}}
	c.put(a)
	c.put(b)
	c.put(mp)
	check := func(when string, want map[int]int) {
		t.Helper()
		for link, n := range want {
			if got := c.onLinkCount(link); got != n {
				t.Errorf("%s: link %d carries %d routes, want %d", when, link, got, n)
			}
		}
	}
	check("after puts", map[int]int{3: 2, 4: 1, 5: 1, 6: 0})
	a.OIF = 6
	c.put(a) // replaced onto link 6
	check("after a replacement", map[int]int{3: 1, 6: 1})
	c.del(kernelKey(mp))
	c.del(kernelKey(b))
	check("after deletes", map[int]int{3: 0, 4: 0, 5: 0, 6: 1})
	if len(c.onLink) != 1 {
		t.Errorf("counts kept for %d links, want 1", len(c.onLink))
	}
}

// TestRouteCacheForgets: forgetLink removes exactly the plain routes over
// the link and names each, and refuses (removing nothing) when a
// multipath route uses it; forgetRoute follows a deletion of a plain
// route over the same link, a key it never held, and nothing else;
// addrFree holds only when no route is over the address's link, has a
// source address or a link the kernel resolved; the counts go back to
// nothing when every route is gone.
func TestRouteCacheForgets(t *testing.T) {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	on3 := []rtnl.Route{{Dst: p("10.1.0.1/32"), OIF: 3, Table: 254}, {Dst: p("fd01::1/128"), OIF: 3, Table: 254, Priority: 1024}}
	on4 := rtnl.Route{Dst: p("10.1.0.2/32"), OIF: 4, Table: 254}
	sourced := rtnl.Route{Dst: p("10.2.0.0/24"), OIF: 4, Src: a("10.0.0.1"), Table: 254}
	resolved := rtnl.Route{Dst: p("10.3.0.0/24"), Gateway: a("10.0.0.2"), Table: 254}
	mp := rtnl.Route{Dst: p("10.4.0.0/24"), Table: 254, Multipath: true, Nexthops: []rtnl.Nexthop{{OIF: 5}, {OIF: 6}}}
	c := newRouteCache(0)
	for _, r := range append(on3, on4, sourced, resolved, mp) {
		c.put(r)
	}
	if c.addrFree(7, false) {
		t.Error("addrFree with a sourced and a resolved route")
	}
	var gone []netip.Prefix
	none := func(int) bool { return false }
	if !c.forgetLink(3, false, none, func(k route.Key) { gone = append(gone, k.Dst) }) {
		t.Fatal("forgetLink(3) refused")
	}
	slices.SortFunc(gone, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	if !slices.Equal(gone, []netip.Prefix{on3[0].Dst, on3[1].Dst}) || c.has(kernelKey(on3[0])) || c.has(kernelKey(on3[1])) || c.onLinkCount(3) != 0 {
		t.Errorf("forgetLink(3) named %v, left counts %d", gone, c.onLinkCount(3))
	}
	if c.len() != 4 {
		t.Errorf("len %d after forgetting link 3, want 4", c.len())
	}
	// A multipath route: its next hop's link going down leaves it (the
	// kernel marks the next hop dead) while the other's link is up, and
	// takes it while that one is down; going away takes an IPv4 one.
	if !c.forgetLink(5, false, none, func(route.Key) { t.Error("forgetLink(5) down named a route") }) || !c.has(kernelKey(mp)) || c.onLinkCount(5) != 1 {
		t.Error("forgetLink(5) down with link 6 up did not keep the multipath route")
	}
	gone = nil
	if !c.forgetLink(5, false, func(i int) bool { return i == 6 }, func(k route.Key) { gone = append(gone, k.Dst) }) ||
		c.has(kernelKey(mp)) || !slices.Equal(gone, []netip.Prefix{mp.Dst}) || c.onLinkCount(6) != 0 {
		t.Errorf("forgetLink(5) down with link 6 down named %v, want the multipath route", gone)
	}
	c.put(mp)
	gone = nil
	if !c.forgetLink(6, true, none, func(k route.Key) { gone = append(gone, k.Dst) }) || c.has(kernelKey(mp)) || !slices.Equal(gone, []netip.Prefix{mp.Dst}) {
		t.Errorf("forgetLink(6) away named %v, want the IPv4 multipath route", gone)
	}
	// IPv6: going away takes the next hop over the link; one left is a
	// single path.
	mp6 := rtnl.Route{Dst: p("fd04::/64"), Table: 254, Priority: 1024, Nexthops: []rtnl.Nexthop{{Gateway: a("fd00::5"), OIF: 5}, {Gateway: a("fd00::6"), OIF: 6}}}
	c.put(mp6)
	if !c.forgetLink(5, true, none, func(route.Key) {}) {
		t.Fatal("forgetLink(5) away refused an IPv6 multipath route")
	}
	if r, ok := c.get(kernelKey(mp6)); !ok || r.Gateway != a("fd00::6") || r.OIF != 6 || len(r.Nexthops) != 0 || c.onLinkCount(5) != 0 || c.onLinkCount(6) != 1 {
		t.Errorf("IPv6 multipath route after link 5 went away: %+v (%t), counts %d, %d", r, ok, c.onLinkCount(5), c.onLinkCount(6))
	}
	c.del(kernelKey(mp6))
	// A next hop whose device is unknown: the cache cannot tell.
	unknown := rtnl.Route{Dst: p("10.4.1.0/24"), Table: 254, Nexthops: []rtnl.Nexthop{{Gateway: a("10.0.0.5"), OIF: 5}, {Gateway: a("10.0.0.9")}}}
	c.put(unknown)
	if c.forgetLink(5, true, none, func(route.Key) { t.Error("forgetLink(5) named a route") }) || !c.has(kernelKey(unknown)) {
		t.Error("forgetLink over a multipath route with an unknown next hop did not refuse")
	}
	c.del(kernelKey(unknown))
	c.put(mp)
	// The kernel deleting one next hop of an IPv6 route (its link went
	// away) is followed; a second one empties it.
	c.put(mp6)
	if f, r := c.forgetRoute(rtnl.Route{Dst: mp6.Dst, Table: 254, Priority: 1024, Gateway: a("fd00::5"), OIF: 5}); !f || !r {
		t.Errorf("forgetRoute(one next hop of an IPv6 multipath route) = %t, %t; want true, true", f, r)
	}
	if f, r := c.forgetRoute(rtnl.Route{Dst: mp6.Dst, Table: 254, Priority: 1024, Gateway: a("fd00::6"), OIF: 6}); !f || !r || c.has(kernelKey(mp6)) {
		t.Errorf("forgetRoute(the last next hop) = %t, %t, still cached %t; want true, true, false", f, r, c.has(kernelKey(mp6)))
	}
	for _, tc := range []struct {
		r                 rtnl.Route
		followed, removed bool
	}{
		{on3[0], true, false}, // forgotten already
		{rtnl.Route{Dst: on4.Dst, OIF: 9, Table: 254}, false, false}, // another link
		{rtnl.Route{Dst: mp.Dst, Table: 254}, false, false},          // multipath
		{on4, true, true},
	} {
		if f, r := c.forgetRoute(tc.r); f != tc.followed || r != tc.removed {
			t.Errorf("forgetRoute(%s over %d) = %t, %t; want %t, %t", tc.r.Dst, tc.r.OIF, f, r, tc.followed, tc.removed)
		}
	}
	c.del(kernelKey(resolved))
	if c.addrFree(3, false) || c.addrFree(3, true) {
		t.Error("addrFree(3) with a sourced route over link 4")
	}
	c.del(kernelKey(sourced))
	if !c.addrFree(3, false) || c.addrFree(5, false) || !c.addrFree(5, true) {
		t.Errorf("addrFree(3) %t, addrFree(5) %t, with 5 down %t with a multipath route over 5; want true, false, true",
			c.addrFree(3, false), c.addrFree(5, false), c.addrFree(5, true))
	}
	c.del(kernelKey(mp))
	if c.len() != 0 || len(c.onLink) != 0 || c.sourced != 0 {
		t.Errorf("after every route went: len %d, links counted %v, sourced %d", c.len(), c.onLink, c.sourced)
	}
}

// TestRouteCacheLinkIndex: over random puts (plain routes, routes kept
// whole, moves between links), deletes, deletion notifications and links
// going, the index of small links always holds exactly the plain routes
// over each link it covers, and forgetting a link removes exactly what a
// walk of the whole cache would: its plain routes, or nothing when a
// route kept whole uses it.
func TestRouteCacheLinkIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	c := newRouteCache(0)
	want := map[route.Key]rtnl.Route{} // what the cache holds
	indexed, walked := 0, 0
	for step := range 20_000 {
		// Links 1 and 3 carry a few routes (pods); link 2 up to 12, in
		// and out of the index; link 4 is an uplink of up to 64. A
		// destination sometimes moves to another link.
		oif := 1 + rng.IntN(4)
		width := [...]int{1: 4, 2: 12, 3: 4, 4: 64}[oif]
		dstLink := oif
		if rng.IntN(10) == 0 {
			dstLink = 1 + rng.IntN(4)
			width = min(width, [...]int{1: 4, 2: 12, 3: 4, 4: 64}[dstLink])
		}
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(dstLink), byte(rng.IntN(width))}), 32)
		r := rtnl.Route{Dst: dst, OIF: oif, Table: 254, Scope: 253, Protocol: 107, Type: 1}
		switch n := rng.IntN(100); {
		case n < 45:
			c.put(r)
			want[kernelKey(r)] = r
		case n < 46: // a route kept whole over the link
			r.Nexthops = []rtnl.Nexthop{{OIF: oif}, {OIF: 1 + rng.IntN(4)}}
			c.put(r)
			want[kernelKey(r)] = r
		case n < 70:
			c.del(kernelKey(r))
			delete(want, kernelKey(r))
		case n < 85:
			if followed, removed := c.forgetRoute(r); followed && removed {
				delete(want, kernelKey(r))
			}
		default:
			link := 1 + rng.IntN(4)
			var gone []route.Key
			_, fast := c.few[int32(link)]
			fast = fast && len(c.few[int32(link)]) == c.onLinkCount(link)
			// Set down, with every other link up: a multipath route
			// goes only when all its next hops are over the link.
			ok := c.forgetLink(link, false, func(int) bool { return false }, func(k route.Key) { gone = append(gone, k) })
			var wantGone []route.Key
			for k, wr := range want {
				if len(wr.Nexthops) == 0 && wr.OIF == link ||
					len(wr.Nexthops) > 0 && !slices.ContainsFunc(wr.Nexthops, func(h rtnl.Nexthop) bool { return h.OIF != link }) {
					wantGone = append(wantGone, k)
				}
			}
			if !ok {
				t.Fatalf("step %d: forgetLink(%d) refused", step, link)
			}
			cmpKeys := func(a, b route.Key) int { return a.Dst.Addr().Compare(b.Dst.Addr()) }
			slices.SortFunc(gone, cmpKeys)
			slices.SortFunc(wantGone, cmpKeys)
			if !slices.Equal(gone, wantGone) {
				t.Fatalf("step %d: forgetLink(%d) removed %v, want %v", step, link, gone, wantGone)
			}
			for _, k := range gone {
				delete(want, k)
			}
			if ok && len(gone) > 0 {
				if fast {
					indexed++
				} else {
					walked++
				}
			}
		}
		// The index: exactly the plain routes of every link it covers.
		for oif, keys := range c.few {
			if c.crowded[oif] {
				t.Fatalf("step %d: link %d both indexed and crowded", step, oif)
			}
			var plainKeys []cacheKey
			for k, v := range c.m {
				if v.oif == oif {
					plainKeys = append(plainKeys, k)
				}
			}
			if len(plainKeys) != len(keys) || len(keys) > fewPerLink {
				t.Fatalf("step %d: link %d indexed %d routes, holds %d plain", step, oif, len(keys), len(plainKeys))
			}
			for _, k := range plainKeys {
				if !slices.Contains(keys, k) {
					t.Fatalf("step %d: link %d: %v not indexed", step, oif, k)
				}
			}
		}
		if c.len() != len(want) {
			t.Fatalf("step %d: cache holds %d routes, want %d", step, c.len(), len(want))
		}
	}
	if indexed < 100 || walked < 10 {
		t.Fatalf("links forgotten through the index %d times, by a walk %d: both must be exercised", indexed, walked)
	}
	t.Logf("links forgotten through the index %d times, by a walk %d", indexed, walked)
}
