package kernel_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestRestartAdoptsWithoutFlap restarts the backend on a namespace that
// already holds its routes: routes in both the kernel and the new Config get
// no RTM_DELROUTE or RTM_NEWROUTE, and a route missing from the new Config
// stays until the first Set completes.
func TestRestartAdoptsWithoutFlap(t *testing.T) {
	n := newTestNet(t)
	ctx := context.Background()
	kept := []route.Route{
		{Dst: pfx("10.60.0.0/16"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.61.0.0/24"), Device: n.Dev, Table: 100, Metric: 9},
		{Dst: pfx("fd60::/64"), Gateway: addr("fd00::2"), Device: n.Dev},
	}
	stale := route.Route{Dst: pfx("10.62.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev}

	first, err := kernel.New(kernel.Options{NetNS: n.NS})
	if err != nil {
		t.Fatalf("new backend: %v", err)
	}
	if err := first.Set(ctx, route.Config{Routes: append(kept[:len(kept):len(kept)], stale)}); err != nil {
		t.Fatalf("set before restart: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checkKernel(t, n, append(kept[:len(kept):len(kept)], stale)) // Close leaves routes alone

	mon := newMonitor(t, n.NS)
	mon.barrier(t, n.NS)
	mon.take()

	second := newBackend(t, n.NS)
	if got := second.Status().Adopted; got != 4 {
		t.Errorf("adopted %d routes, want 4", got)
	}
	checkKernel(t, n, append(kept[:len(kept):len(kept)], stale)) // adoption does not flush

	if err := second.Set(ctx, route.Config{Routes: kept}); err != nil {
		t.Fatalf("set after restart: %v", err)
	}
	checkKernel(t, n, kept)
	mon.barrier(t, n.NS)

	watched := map[netip.Prefix]bool{}
	for _, r := range kept {
		watched[r.Dst] = true
	}
	var staleDeleted bool
	for _, e := range mon.take() {
		if e.Dst == nil || e.Protocol != netlink.RouteProtocol(proto) {
			continue
		}
		ones, _ := e.Dst.Mask.Size()
		a, _ := netip.AddrFromSlice(e.Dst.IP)
		p := netip.PrefixFrom(a.Unmap(), ones)
		if watched[p] {
			t.Errorf("route %s flapped on restart: message type %d", p, e.Type)
		}
		if p == stale.Dst && e.Type == unix.RTM_DELROUTE {
			staleDeleted = true
		}
	}
	if !staleDeleted {
		t.Errorf("no RTM_DELROUTE seen for stale route %s", stale.Dst)
	}
	if diff := cmp.Diff(0, second.Status().Added); diff != "" {
		t.Errorf("routes added after restart (-want +got):\n%s", diff)
	}
}

// TestHoldStaleUntilSweep: with HoldStale, adopted state missing from the
// first Configs survives until Sweep, and kept routes never flap.
func TestHoldStaleUntilSweep(t *testing.T) {
	n := newTestNet(t)
	ctx := context.Background()
	kept := route.Route{Dst: pfx("10.63.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev}
	stale := route.Route{Dst: pfx("10.64.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev}
	staleRule := route.Rule{Priority: 3000, Src: pfx("10.64.0.0/24"), Table: 100}
	first := newBackend(t, n.NS)
	if err := first.Set(ctx, route.Config{Routes: []route.Route{kept, stale}, Rules: []route.Rule{staleRule}}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	mon := newMonitor(t, n.NS)
	second, err := kernel.New(kernel.Options{NetNS: n.NS, HoldStale: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.Sweep(ctx); !errors.Is(err, route.ErrNoConfig) {
		t.Errorf("sweep before any set: got %v, want ErrNoConfig", err)
	}
	later := route.Route{Dst: pfx("10.65.0.0/24"), Device: n.Dev}
	for _, cfg := range []route.Config{{Routes: []route.Route{kept}}, {Routes: []route.Route{kept, later}}} {
		if err := second.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	checkKernel(t, n, []route.Route{kept, stale, later})
	if got := ourRules(t, n.NS); len(got) != 1 {
		t.Errorf("held rule gone before Sweep: %v", got)
	}
	if err := second.Sweep(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	checkKernel(t, n, []route.Route{kept, later})
	if got := ourRules(t, n.NS); len(got) != 0 {
		t.Errorf("rules after Sweep: %v", got)
	}
	mon.barrier(t, n.NS)
	for _, e := range mon.take() {
		if e.Dst != nil && e.Dst.String() == kept.Dst.String() {
			t.Errorf("kept route flapped: message type %d", e.Type)
		}
	}
}
