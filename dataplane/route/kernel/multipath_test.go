package kernel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestMultipath: routes with several weighted next hops (gRIBI's next-hop
// groups) are installed with RTA_MULTIPATH, read back equal from a dump
// (a fresh backend adopting them sends nothing), replaced when a weight
// changes, and removed.
func TestMultipath(t *testing.T) {
	n := newTestNet(t)
	ctx := context.Background()
	routes := []route.Route{
		{Dst: pfx("10.7.0.0/16"), Multipath: []route.NextHop{{Gateway: addr("10.0.0.2"), Device: n.Dev, Weight: 1}, {Gateway: addr("10.0.0.3"), Weight: 3}}},
		{Dst: pfx("fd07::/64"), Multipath: []route.NextHop{{Gateway: addr("fd00::2"), Device: n.Dev}, {Gateway: addr("fd00::3"), Device: n.Dev, Weight: 2}}},
	}
	b := newBackend(t, n.NS)
	if err := b.Set(ctx, route.Config{Routes: routes}); err != nil {
		t.Fatalf("set: %v", err)
	}
	show := func() string {
		return strings.Join(strings.Fields(ip(t, "-n", n.NS, "route", "show", "proto", "107")+" "+
			ip(t, "-n", n.NS, "-6", "route", "show", "proto", "107")), " ")
	}
	for _, want := range []string{
		"10.7.0.0/16 nexthop via 10.0.0.2 dev " + n.Dev + " weight 1 nexthop via 10.0.0.3 dev " + n.Dev + " weight 3",
		"fd07::/64 metric 1024 pref medium nexthop via fd00::2 dev " + n.Dev + " weight 1 nexthop via fd00::3 dev " + n.Dev + " weight 2",
	} {
		if got := show(); !strings.Contains(got, want) {
			t.Errorf("kernel lacks %q:\n%s", want, got)
		}
	}
	// A new backend reads the kernel's routes: equal, so nothing is sent.
	b2 := newBackend(t, n.NS)
	if err := b2.Set(ctx, route.Config{Routes: routes}); err != nil {
		t.Fatalf("set again: %v", err)
	}
	if st := b2.Status(); st.Added != 0 || st.Adopted != 2 {
		t.Errorf("adopting backend: adopted %d, added %d; want 2 read from the kernel and none sent", st.Adopted, st.Added)
	}
	routes[0].Multipath[1].Weight = 5
	if err := b2.Set(ctx, route.Config{Routes: routes}); err != nil {
		t.Fatalf("set new weight: %v", err)
	}
	if st := b2.Status(); st.Added != 1 {
		t.Errorf("weight change: added %d, want 1", st.Added)
	}
	if got := show(); !strings.Contains(got, "nexthop via 10.0.0.3 dev "+n.Dev+" weight 5") {
		t.Errorf("kernel after the weight change:\n%s", got)
	}
	if err := b2.Set(ctx, route.Config{}); err != nil {
		t.Fatalf("set empty: %v", err)
	}
	if got := show(); strings.Contains(got, "nexthop") {
		t.Errorf("multipath routes left:\n%s", got)
	}
}
