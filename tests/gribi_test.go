package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gribigo/fluent"

	spb "github.com/openconfig/gribi/v1/proto/service"
)

// gribiSession opens a fluent gRIBI session (SINGLE_PRIMARY, FIB ACK,
// election id elec) with PRESERVE or DELETE persistence.
func gribiSession(t *testing.T, stub spb.GRIBIClient, elec uint64, preserve bool) *fluent.GRIBIClient {
	t.Helper()
	c := fluent.NewClient()
	conn := c.Connection().WithStub(stub).WithRedundancyMode(fluent.ElectedPrimaryClient).
		WithInitialElectionID(elec, 0).WithFIBACK()
	if preserve {
		conn.WithPersistence()
	}
	ctx := context.Background()
	c.Start(ctx, t)
	c.StartSending(ctx, t)
	await(t, c)
	return c
}

func await(t *testing.T, c *fluent.GRIBIClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Await(ctx, t); err != nil {
		t.Fatalf("await results: %v", err)
	}
}

// fibResults maps each operation id to its last status (FIB_PROGRAMMED
// or FIB_FAILED follow RIB_PROGRAMMED), with the error of a failure.
func fibResults(t *testing.T, c *fluent.GRIBIClient) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, r := range c.Results(t) {
		if r.Details == nil {
			continue
		}
		switch r.ProgrammingResult {
		case spb.AFTResult_FIB_PROGRAMMED:
			out[r.OperationID] = "FIB_PROGRAMMED"
		case spb.AFTResult_FIB_FAILED, spb.AFTResult_FAILED:
			out[r.OperationID] = r.ProgrammingResult.String()
		}
	}
	return out
}

// kernelHas waits until `ip route` in ns shows each want line (substring
// match) and none of gone.
func kernelHas(t *testing.T, n *rtNS, want, gone []string) {
	t.Helper()
	var out string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kernel routes (proto 107):\n%s", out)
		}
	})
	eventually(t, "kernel routes", func() bool {
		out = ipCmd(t, "-n", n.name, "-4", "route", "show", "table", "all", "proto", "107") +
			ipCmd(t, "-n", n.name, "-6", "route", "show", "table", "all", "proto", "107")
		flat := strings.Join(strings.Fields(out), " ")
		for _, w := range want {
			if !strings.Contains(flat, w) {
				return false
			}
		}
		for _, g := range gone {
			if strings.Contains(flat, g) {
				return false
			}
		}
		return true
	})
}

// TestGRIBIKernel injects entries with gribigo's fluent client and checks
// every FIB acknowledgement against the kernel's table: an IPv4 route via
// one next hop, a weighted multipath route, an IPv6 route, an implicit
// replace, a delete, and a next hop the kernel refuses (FIB_FAILED, the
// kernel never holding the route). Then a restart: PRESERVE entries stay
// in the kernel and the RIB; a DELETE session's entries go when it ends,
// and when the daemon stops while it is connected they are gone after
// the restart.
func TestGRIBIKernel(t *testing.T) {
	n := gribiNS(t)
	dir := t.TempDir()
	stub, stop := startGRIBI(t, dir, n.name)

	c := gribiSession(t, stub, 1, true)
	m := c.Modify()
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(2).WithIPAddress("192.0.2.3"))
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(3).WithIPAddress("2001:db8:ffff::2"))
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(4).WithIPAddress("10.99.0.1")) // no connected network
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(10).AddNextHop(1, 1))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(11).AddNextHop(1, 1).AddNextHop(2, 3))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(12).AddNextHop(3, 1))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(13).AddNextHop(4, 1))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.100.0/24").WithNextHopGroup(10))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("203.0.113.0/24").WithNextHopGroup(11))
	m.AddEntry(t, fluent.IPv6Entry().WithNetworkInstance("DEFAULT").WithPrefix("2001:db8:1::/48").WithNextHopGroup(12))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("100.64.9.0/24").WithNextHopGroup(13))
	await(t, c)
	got := fibResults(t, c)
	for id := uint64(1); id <= 11; id++ {
		if got[id] != "FIB_PROGRAMMED" {
			t.Errorf("operation %d: %q, want FIB_PROGRAMMED (all: %v)", id, got[id], got)
		}
	}
	if got[12] != "FIB_FAILED" {
		t.Errorf("route via an unreachable gateway: %q, want FIB_FAILED", got[12])
	}
	// The acknowledgements came after the kernel held the routes: no
	// waiting here.
	kernelHas(t, n, []string{
		"198.51.100.0/24 via 192.0.2.1 dev rtA",
		"203.0.113.0/24 nexthop via 192.0.2.1 dev rtA weight 1 nexthop via 192.0.2.3 dev rtA weight 3",
		"2001:db8:1::/48 via 2001:db8:ffff::2 dev rtA",
	}, []string{"100.64.9.0"})

	// Implicit replace onto the multipath group, and a delete.
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.100.0/24").WithNextHopGroup(11))
	m.DeleteEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("203.0.113.0/24"))
	await(t, c)
	got = fibResults(t, c)
	if got[13] != "FIB_PROGRAMMED" || got[14] != "FIB_PROGRAMMED" {
		t.Errorf("replace and delete: %q %q, want FIB_PROGRAMMED", got[13], got[14])
	}
	kernelHas(t, n, []string{"198.51.100.0/24 nexthop via 192.0.2.1 dev rtA weight 1 nexthop via 192.0.2.3"},
		[]string{"203.0.113.0/24"})
	c.Stop(t)

	// A DELETE session: its entries go when it ends.
	d := gribiSession(t, stub, 2, false)
	d.Modify().AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("100.64.1.0/24").WithNextHopGroup(10))
	await(t, d)
	if r := fibResults(t, d); r[1] != "FIB_PROGRAMMED" {
		t.Fatalf("DELETE session's entry: %v", r)
	}
	kernelHas(t, n, []string{"100.64.1.0/24 via 192.0.2.1"}, nil)
	d.Stop(t)
	kernelHas(t, n, nil, []string{"100.64.1.0/24"})

	// A DELETE session connected while the daemon stops: its entry is
	// gone after the restart; the PRESERVE entries stay, with no flap.
	d = gribiSession(t, stub, 3, false)
	d.Modify().AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("100.64.2.0/24").WithNextHopGroup(10))
	await(t, d)
	kernelHas(t, n, []string{"100.64.2.0/24 via 192.0.2.1"}, nil)
	stop()
	d.Stop(t)
	stub, _ = startGRIBI(t, dir, n.name)
	kernelHas(t, n, []string{"198.51.100.0/24 nexthop", "2001:db8:1::/48 via 2001:db8:ffff::2"},
		[]string{"100.64.2.0/24"})
	g := fluent.NewClient()
	g.Connection().WithStub(stub)
	g.Start(context.Background(), t)
	defer g.Stop(t)
	res, err := g.Get().WithNetworkInstance("DEFAULT").WithAFT(fluent.IPv4).Send()
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var prefixes []string
	for _, e := range res.GetEntry() {
		prefixes = append(prefixes, e.GetIpv4().GetPrefix()+" "+e.GetFibStatus().String())
	}
	want := "100.64.9.0/24 NOT_PROGRAMMED,198.51.100.0/24 PROGRAMMED"
	if strings.Join(prefixes, ",") != want {
		t.Errorf("IPv4 entries after the restart: %v, want %s", prefixes, want)
	}
}
