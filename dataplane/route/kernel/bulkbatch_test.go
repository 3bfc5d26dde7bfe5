package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// TestPatchBulkFailuresAmongBatches puts 40 gateway-only routes in
// batches of 8 with unreachable gateways in the middle batch and in the
// last, the guard of any change to how a Patch's batches are planned and
// sent (a sender overlapping the planning was tried: BENCHMARKS.md,
// 2026-12-06): each failure must land on its own route and only there, the
// devices the kernel echoes must reach the adds of their own batch (a
// Set of the same routes naming the device then sends nothing), and the
// Patch's delete must run after its puts.
func TestPatchBulkFailuresAmongBatches(t *testing.T) {
	n := newTestNet(t)
	b, err := kernel.New(kernel.Options{NetNS: n.NS, Batch: 8})
	if err != nil {
		t.Fatalf("new backend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	old := route.Route{Dst: pfx("10.66.0.0/24"), Gateway: addr("10.0.0.2")}
	if err := b.Set(ctx, route.Config{Routes: []route.Route{old}}); err != nil {
		t.Fatalf("set: %v", err)
	}
	puts := manyRoutes(40, "")
	bad := map[int]bool{17: true, 19: true, 22: true, 38: true}
	var good []route.Route
	for i := range puts {
		if bad[i] {
			puts[i].Gateway = addr("192.168.5.5")
			continue
		}
		good = append(good, puts[i])
	}
	err = b.Patch(ctx, route.Patch{Put: puts, Del: []route.Route{old}})
	if !errors.Is(err, route.ErrGatewayUnreachable) {
		t.Fatalf("patch: got %v, want ErrGatewayUnreachable", err)
	}
	if c := strings.Count(err.Error(), "\n") + 1; c != len(bad) {
		t.Errorf("patch returned %d errors, want %d: %v", c, len(bad), err)
	}
	st := b.Status()
	for i, s := range st.Routes {
		var re *route.RouteError
		failed := s.State == route.StateFailed
		switch {
		case failed != bad[i]:
			t.Errorf("route %d %s: state %s err %v", i, puts[i].Dst, s.State, s.Err)
		case failed && (!errors.As(s.Err, &re) || !re.Route.Equal(puts[i]) || !errors.Is(s.Err, route.ErrGatewayUnreachable)):
			t.Errorf("route %d %s: error %v, want ErrGatewayUnreachable naming it", i, puts[i].Dst, s.Err)
		}
	}
	if wantSends := (len(puts) + 7) / 8; st.Added != len(good) || st.Removed != 1 || st.Sends != wantSends+1 {
		t.Errorf("added %d, removed %d in %d sends; want %d, 1, %d", st.Added, st.Removed, st.Sends, len(good), wantSends+1)
	}
	if diff := cmp.Diff(want(good, n.Dev), nlShow(t, n.NS)); diff != "" {
		t.Errorf("kernel (-want +got):\n%s", diff)
	}
	// The cache holds exactly the adds acknowledged, with their devices.
	named := make([]route.Route, len(good))
	for i, r := range good {
		r.Device = n.Dev
		named[i] = r
	}
	if err := b.Set(ctx, route.Config{Routes: named}); err != nil {
		t.Fatalf("set named: %v", err)
	}
	if st := b.Status(); st.Messages != 0 || st.ReadKernel {
		t.Errorf("set naming the devices: %d messages, read kernel %t; want 0, false", st.Messages, st.ReadKernel)
	}
}
