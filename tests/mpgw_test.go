package tests

import (
	"context"
	"testing"

	"github.com/openconfig/gribigo/fluent"
)

// TestGRIBIGroupFollowsItsNextHopsLinks: a gRIBI next-hop group of two
// next hops given only by address, each resolved over its own link. When
// one link is deleted the kernel drops the IPv4 route whole, silently;
// the entry reads NOT_PROGRAMMED once the backend's grace has passed, and
// PROGRAMMED again, the kernel holding both next hops, once the link is
// back. The backend learns each next hop's device from the kernel's echo
// of the add, so the link's going is followed by the route cache
// (dataplane/route/kernel, TestMultipathGatewayHopsFollowTheirLinks).
// The second next hop is reached through the link's address, or through
// a device route over an unnumbered link: before, the backend noticed the
// link's going only through its address's deletion (which dropped the
// whole route cache), so over the unnumbered link the entry stayed
// PROGRAMMED with the kernel holding no route.
func TestGRIBIGroupFollowsItsNextHopsLinks(t *testing.T) {
	for _, unnumbered := range []bool{false, true} {
		name := "address"
		if unnumbered {
			name = "unnumbered"
		}
		t.Run(name, func(t *testing.T) { testGRIBIGroupLinks(t, unnumbered) })
	}
}

func testGRIBIGroupLinks(t *testing.T, unnumbered bool) {
	n := gribiNS(t)
	makeLink := func() {
		ipCmd(t, "-n", n.name, "link", "add", "mpA", "type", "veth", "peer", "name", "mpB")
		// No IPv6 link-local address on either end: its deletion with
		// the link would drop the old backend's cache.
		ipCmd(t, "-n", n.name, "link", "set", "mpA", "addrgenmode", "none")
		ipCmd(t, "-n", n.name, "link", "set", "mpB", "addrgenmode", "none")
		if !unnumbered {
			ipCmd(t, "-n", n.name, "addr", "add", "10.79.0.1/24", "dev", "mpA")
		}
		ipCmd(t, "-n", n.name, "link", "set", "mpB", "up")
		ipCmd(t, "-n", n.name, "link", "set", "mpA", "up")
		if unnumbered {
			ipCmd(t, "-n", n.name, "route", "add", "10.79.0.0/24", "dev", "mpA")
		}
	}
	makeLink()
	stub, _ := startGRIBI(t, t.TempDir(), n.name)
	c := gribiSession(t, stub, 1, true)
	defer c.Stop(t)
	m := c.Modify()
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(2).WithIPAddress("10.79.0.2"))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(10).AddNextHop(1, 1).AddNextHop(2, 1))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("203.0.113.0/24").WithNextHopGroup(10))
	await(t, c)
	if got := fibResults(t, c); got[4] != "FIB_PROGRAMMED" {
		t.Fatalf("the group's entry: %v, want FIB_PROGRAMMED", got)
	}
	whole := "203.0.113.0/24 nexthop via 192.0.2.1 dev rtA weight 1 nexthop via 10.79.0.2 dev mpA weight 1"
	kernelHas(t, n, []string{whole}, nil)

	g := fluent.NewClient()
	g.Connection().WithStub(stub)
	g.Start(context.Background(), t)
	defer g.Stop(t)
	status := func() string {
		res, err := g.Get().WithNetworkInstance("DEFAULT").WithAFT(fluent.IPv4).Send()
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		for _, e := range res.GetEntry() {
			if e.GetIpv4().GetPrefix() == "203.0.113.0/24" {
				return e.GetFibStatus().String()
			}
		}
		return "absent"
	}
	if s := status(); s != "PROGRAMMED" {
		t.Fatalf("entry %s, want PROGRAMMED", s)
	}

	ipCmd(t, "-n", n.name, "link", "del", "mpA")
	kernelHas(t, n, nil, []string{"203.0.113.0/24"})
	eventually(t, "the entry NOT_PROGRAMMED with a next hop's link gone", func() bool { return status() == "NOT_PROGRAMMED" })

	makeLink()
	kernelHas(t, n, []string{whole}, nil)
	eventually(t, "the entry PROGRAMMED with the link back", func() bool { return status() == "PROGRAMMED" })
}
