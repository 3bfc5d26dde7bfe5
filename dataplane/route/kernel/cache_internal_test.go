package kernel

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
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
