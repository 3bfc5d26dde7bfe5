package kernel

import (
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"golang.org/x/sys/unix"
)

// TestEchoRuns: one add per gateway and table is echoed in a run of
// gateway-only adds, an add that may change how gateways resolve (a
// device route, a link-scope or multipath one) ends the run, and spread
// gives every gateway-only add its run's learnt device, none when the
// echo never came.
func TestEchoRuns(t *testing.T) {
	gw := func(dst, via string, table uint32) rtnl.Route {
		return rtnl.Route{Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr(via), Table: table, Type: unix.RTN_UNICAST}
	}
	linkScope := gw("10.1.9.0/24", "10.0.0.1", 254)
	linkScope.Scope = unix.RT_SCOPE_LINK
	withDev := gw("10.1.8.0/24", "10.0.0.1", 254)
	withDev.OIF = 9
	adds := []struct {
		r    rtnl.Route
		echo bool
		oif  int // after spread; echoed adds learn 10+index
	}{
		{gw("10.1.0.0/24", "10.0.0.1", 254), true, 10},
		{gw("10.1.1.0/24", "10.0.0.1", 254), false, 10},
		{gw("10.1.2.0/24", "10.0.0.2", 254), true, 0},  // its echo never comes
		{gw("10.1.3.0/24", "10.0.0.1", 100), true, 13}, // another table
		{gw("10.1.4.0/24", "10.0.0.2", 254), false, 0},
		{withDev, false, 9}, // a device given with a gateway keeps the run
		{gw("10.1.5.0/24", "10.0.0.1", 254), false, 10},
		{linkScope, false, 10}, // takes the run's device, then ends it
		{gw("10.1.6.0/24", "10.0.0.1", 254), true, 18},
		{rtnl.Route{Dst: netip.MustParsePrefix("10.0.0.0/24"), OIF: 3, Scope: unix.RT_SCOPE_LINK, Table: 254}, false, 3},
		{gw("10.1.7.0/24", "10.0.0.1", 254), true, 20},
		{gw("fd01::/64", "fd00::1", 254), true, 21},
		{gw("fd01:1::/64", "fd00::1", 254), false, 21},
		{rtnl.Route{Dst: netip.MustParsePrefix("10.2.0.0/24"), Table: 254,
			Nexthops: []rtnl.Nexthop{{Gateway: netip.MustParseAddr("10.0.0.1")}, {Gateway: netip.MustParseAddr("10.0.0.3"), OIF: 4}}}, true, 0},
		{gw("10.1.10.0/24", "10.0.0.1", 254), true, 24},
	}
	var p routePlan
	for i, a := range adds {
		f := p.echoFlag(a.r)
		if got := f == rtnl.FlagEcho; got != a.echo {
			t.Errorf("add %d (%s): echoed %t, want %t", i, a.r.Dst, got, a.echo)
		}
		var req rtnl.Request
		p.arena, req = rtnl.AppendRoute(p.arena, a.r, rtnl.FlagCreate|f)
		p.reqs, p.sent = append(p.reqs, req), append(p.sent, a.r)
	}
	for j, req := range p.reqs {
		switch {
		case req.Flags&rtnl.FlagEcho == 0 || j == 2:
		case len(p.sent[j].Nexthops) > 0:
			// The kernel's order differs from the request's.
			p.learn(j, rtnl.Route{Dst: p.sent[j].Dst, Multipath: true, Nexthops: []rtnl.Nexthop{
				{Gateway: netip.MustParseAddr("10.0.0.3"), OIF: 4}, {Gateway: netip.MustParseAddr("10.0.0.1"), OIF: 10 + j}}})
		default:
			p.learn(j, rtnl.Route{Dst: p.sent[j].Dst, Gateway: p.sent[j].Gateway, OIF: 10 + j})
		}
	}
	if hops := p.sent[13].Nexthops; hops[0].OIF != 23 || hops[1].OIF != 4 {
		t.Errorf("multipath add's next hops learnt devices %d and %d, want 23 and 4", hops[0].OIF, hops[1].OIF)
	}
	p.spread()
	for i, a := range adds {
		if p.sent[i].OIF != a.oif {
			t.Errorf("add %d (%s): device %d, want %d", i, a.r.Dst, p.sent[i].OIF, a.oif)
		}
	}
}

// BenchmarkEchoRuns is what learning the device costs a 100,000-route
// gRIBI load beyond the kernel's one echo: echoFlag for each add as it
// is planned, then spread over the adds.
func BenchmarkEchoRuns(b *testing.B) {
	const total = 100_000
	var p routePlan
	gw := netip.MustParseAddr("192.0.2.1")
	a := netip.MustParseAddr("10.128.0.1")
	for range total {
		r := rtnl.Route{Dst: netip.PrefixFrom(a, 32), Gateway: gw, Table: 254, Type: unix.RTN_UNICAST}
		p.sent = append(p.sent, r)
		p.reqs = append(p.reqs, rtnl.Request{})
		a = a.Next()
	}
	b.ResetTimer()
	for range b.N {
		clear(p.run)
		for j := range p.sent {
			p.sent[j].OIF = 0
			p.reqs[j].Flags = p.echoFlag(p.sent[j])
		}
		p.learn(0, rtnl.Route{OIF: 7})
		p.spread()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/total, "ns/route")
}
