package kernel_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// manyRoutes returns n /32 routes in 10.128.0.0/9 via the peer.
func manyRoutes(n int, dev string) []route.Route {
	rs := make([]route.Route, n)
	base := netip.MustParseAddr("10.128.0.0").As4()
	for i := range rs {
		a := base
		a[1] += byte(i >> 16)
		a[2] = byte(i >> 8)
		a[3] = byte(i)
		rs[i] = route.Route{Dst: netip.PrefixFrom(netip.AddrFrom4(a), 32), Gateway: addr("10.0.0.2"), Device: dev}
	}
	return rs
}

func TestBatch10000WithBadRouteInside(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	const total = 10000
	routes := manyRoutes(total, n.Dev)
	// The bad route sits in the middle of the 10th batch of 512.
	bad := route.Route{Dst: pfx("10.77.0.0/24"), Gateway: addr("192.168.5.5"), Device: n.Dev}
	cfg := append(routes[:4860:4860], bad)
	cfg = append(cfg, routes[4860:]...)

	err := b.Set(context.Background(), route.Config{Routes: cfg})
	if !errors.Is(err, route.ErrGatewayUnreachable) || !strings.Contains(err.Error(), "10.77.0.0/24") {
		t.Fatalf("set: got %v, want one ErrGatewayUnreachable naming 10.77.0.0/24", err)
	}
	if c := strings.Count(err.Error(), "\n"); c != 0 {
		t.Errorf("set returned %d errors, want 1: %v", c+1, err)
	}
	st := b.Status()
	if st.Added != total {
		t.Errorf("added %d, want %d", st.Added, total)
	}
	if wantSends := (total + 1 + kernel.DefaultBatch - 1) / kernel.DefaultBatch; st.Sends != wantSends {
		t.Errorf("sent %d netlink messages in %d sendmsg calls, want %d calls", st.Messages, st.Sends, wantSends)
	}
	for i, s := range st.Routes {
		if (s.State == route.StateFailed) != cfg[i].Equal(bad) {
			t.Errorf("route %d %s: state %s err %v", i, cfg[i], s.State, s.Err)
		}
	}
	if diff := cmp.Diff(want(routes, n.Dev), nlShow(t, n.NS)); diff != "" {
		t.Errorf("kernel (-want +got):\n%s", diff)
	}
	if got := len(ipShow(t, n.NS)); got != total {
		t.Errorf("ip route shows %d routes, want %d", got, total)
	}
	// Again: nothing to send, and the monitor's filter kept our own 10,000
	// notifications out, so the cache is trusted.
	if err := b.Set(context.Background(), route.Config{Routes: routes}); err != nil {
		t.Fatalf("set again: %v", err)
	}
	if st := b.Status(); st.Added != 0 || st.ReadKernel || st.Messages != 0 {
		t.Errorf("repeat Set: added %d, read kernel %t, messages %d; want 0, false, 0", st.Added, st.ReadKernel, st.Messages)
	}
	// Remove half in one Set.
	if err := b.Set(context.Background(), route.Config{Routes: routes[:total/2]}); err != nil {
		t.Fatalf("set half: %v", err)
	}
	if st := b.Status(); st.Removed != total/2 {
		t.Errorf("removed %d, want %d", st.Removed, total/2)
	}
	if diff := cmp.Diff(want(routes[:total/2], n.Dev), nlShow(t, n.NS)); diff != "" {
		t.Errorf("kernel after removing half (-want +got):\n%s", diff)
	}
}
