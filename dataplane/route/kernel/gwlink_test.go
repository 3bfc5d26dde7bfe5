package kernel_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestGatewayRouteLostWithLink: a route given only a gateway (every gRIBI
// route) gets the device the kernel resolves, and when that device goes
// down the kernel drops the route (IPv4 silently, IPv6 with a
// notification). The backend must then record it lost like a route over
// a named device: a Patch within the grace applies (nothing can be put
// back over a down link), past it Watch reports drift and Patch refuses
// naming the route, the whole Set records it failed, and once the link is
// up again Watch reports drift and the Set installs it. Before, the cache
// kept the route (cached without a device, so the link's going touched
// nothing): over a link without an IPv6 link-local address IPv4's stayed
// "installed" with no drift ever; IPv6's notification, or the link-local
// address's deletion, dropped the whole cache at once (a whole Set reading
// every route).
func TestGatewayRouteLostWithLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr string // the gateway link's address
		dst  string // two routes through the gateway: dst and dst2
		dst2 string
		gw   string
		// noLL: the link has no IPv6 link-local address, whose deletion
		// (the link going down) made the old backend drop its cache.
		noLL bool
	}{
		{"ipv4", "10.5.0.1/24", "10.99.0.0/24", "10.99.1.0/24", "10.5.0.2", false},
		{"ipv6", "fd05::1/64", "fd99::/64", "fd99:1::/64", "fd05::2", false},
		{"ipv4-no-link-local", "10.5.0.1/24", "10.99.0.0/24", "10.99.1.0/24", "10.5.0.2", true},
		{"ipv6-no-link-local", "fd05::1/64", "fd99::/64", "fd99:1::/64", "fd05::2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t)
			b, ctx, advance, drifts := watchedBackend(t, n)

			host, peer := "kg"+randHex(3), "kh"+randHex(3)
			ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", peer)
			// The IPv6 address stays over the link's down and up, as the
			// IPv4 one does.
			if out := ip(t, "netns", "exec", n.NS, "sysctl", "-w", "net.ipv6.conf."+host+".keep_addr_on_down=1"); !strings.Contains(out, "= 1") {
				t.Fatalf("keep_addr_on_down: %s", out)
			}
			if tc.noLL {
				ip(t, "-n", n.NS, "link", "set", host, "addrgenmode", "none")
			}
			ip(t, "-n", n.NS, "addr", "add", tc.addr, "dev", host, "nodad")
			ip(t, "-n", n.NS, "link", "set", peer, "up")
			ip(t, "-n", n.NS, "link", "set", host, "up")
			base := route.Route{Dst: pfx("10.97.0.0/24"), Device: n.Dev}
			// The second route's device is the first's, learnt from the
			// one echo of their run (resolve.go).
			cfg := route.Config{Routes: []route.Route{base,
				{Dst: pfx(tc.dst), Gateway: addr(tc.gw)}, {Dst: pfx(tc.dst2), Gateway: addr(tc.gw)}}}
			if err := b.Set(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			inKernel := func(dst string) bool {
				return strings.Contains(ip(t, "-n", n.NS, "-4", "route", "show", "table", "all"), dst) ||
					strings.Contains(ip(t, "-n", n.NS, "-6", "route", "show", "table", "all"), dst)
			}
			both := func() bool { return inKernel(tc.dst) && inKernel(tc.dst2) }
			none := func() bool { return !inKernel(tc.dst) && !inKernel(tc.dst2) }
			if !both() {
				t.Fatalf("%s and %s not in the kernel after the Set", tc.dst, tc.dst2)
			}
			time.Sleep(300 * time.Millisecond) // the Set's own events read
			drainDrifts(drifts)

			ip(t, "-n", n.NS, "link", "set", host, "down")
			waitFor(t, 5*time.Second, none)
			time.Sleep(600 * time.Millisecond) // two of Watch's rounds: no drift within the grace
			noDrift(t, drifts, "drift reported for a gateway route lost within its grace, over a link that is down")
			if err := b.Patch(ctx, route.Patch{}); err != nil {
				t.Fatalf("patch within the grace: %v", err)
			}

			advance(time.Second)
			awaitDrift(t, drifts, "no drift for a gateway route lost past its grace")
			err := b.Patch(ctx, route.Patch{})
			if !errors.Is(err, route.ErrNoBase) || !strings.Contains(err.Error(), "was removed by the kernel") {
				t.Fatalf("patch past the grace: %v, want ErrNoBase for a route removed by the kernel", err)
			}
			if err := b.Set(ctx, cfg); err == nil {
				t.Fatal("whole Set with the gateway's link down: no item error")
			}
			if st := b.Status(); len(st.Routes) != 3 || st.Routes[0].State != route.StateInstalled ||
				st.Routes[1].State != route.StateFailed || st.Routes[2].State != route.StateFailed {
				t.Fatalf("statuses with the link down: %+v, want installed, failed, failed", st.Routes)
			}

			time.Sleep(300 * time.Millisecond)
			drainDrifts(drifts)
			ip(t, "-n", n.NS, "link", "set", host, "up")
			awaitDrift(t, drifts, "no drift once the gateway's link is up again")
			if err := b.Set(ctx, cfg); err != nil {
				t.Fatalf("whole Set with the link up again: %v", err)
			}
			if st := b.Status(); len(st.Routes) != 3 || st.Routes[1].State != route.StateInstalled || st.Routes[2].State != route.StateInstalled {
				t.Fatalf("statuses with the link up again: %+v, want all installed", st.Routes)
			}
			if !both() {
				t.Fatalf("%s and %s not in the kernel after the link came back", tc.dst, tc.dst2)
			}
		})
	}
}
