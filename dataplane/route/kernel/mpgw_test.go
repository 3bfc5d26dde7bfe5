package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// TestMultipathGatewayHopsFollowTheirLinks: a multipath route whose next
// hops are given only by gateway (a gRIBI group of several next hops),
// one next hop over each of two links. The backend learns each next
// hop's device from the kernel's echo, so:
//   - an address deleted on a third link keeps the cache (a Patch
//     applies); before, any address deletion dropped it while such a
//     route was cached;
//   - one link set down leaves the route (the kernel marks that next hop
//     dead): no drift, Patch applies;
//   - that link deleted takes the IPv4 route whole and the IPv6 route's
//     next hop over it: the route is recorded lost, without the cache
//     being dropped (the whole Set reads no kernel route) and the Set
//     reports it failed; before, the cache was dropped (by the link's
//     address deletion, or the IPv6 notification) and read again;
//   - the link made again, Watch reports drift and the Set puts the
//     route back whole.
func TestMultipathGatewayHopsFollowTheirLinks(t *testing.T) {
	for _, tc := range []struct {
		name         string
		addrA, addrB string // the two links' addresses
		gwA, gwB     string
		dst          string
		other        string // an address on the test net's link
		// leftAfterAway is what `ip route` shows for dst once link A is
		// gone: nothing for IPv4, the next hop over B for IPv6.
		leftAfterAway string
	}{
		{"ipv4", "10.6.0.1/24", "10.7.0.1/24", "10.6.0.2", "10.7.0.2", "10.99.0.0/24", "10.55.0.1/24", ""},
		{"ipv6", "fd06::1/64", "fd07::1/64", "fd06::2", "fd07::2", "fd99::/64", "fd55::1/64", "via fd07::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t)
			b, ctx, advance, drifts := watchedBackend(t, n)

			id := randHex(3)
			hostA, hostB := "ka"+id, "kb"+id
			makeLink := func(host, a string) {
				ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", "p"+host)
				// Addresses stay over down and up, IPv6's as IPv4's, and
				// no link-local address comes and goes.
				ip(t, "netns", "exec", n.NS, "sysctl", "-qw", "net.ipv6.conf."+host+".keep_addr_on_down=1")
				ip(t, "-n", n.NS, "link", "set", host, "addrgenmode", "none")
				ip(t, "-n", n.NS, "addr", "add", a, "dev", host, "nodad")
				ip(t, "-n", n.NS, "link", "set", "p"+host, "up")
				ip(t, "-n", n.NS, "link", "set", host, "up")
			}
			makeLink(hostA, tc.addrA)
			makeLink(hostB, tc.addrB)
			ip(t, "-n", n.NS, "addr", "add", tc.other, "dev", n.Dev, "nodad")
			cfg := route.Config{Routes: []route.Route{{Dst: pfx(tc.dst),
				Multipath: []route.NextHop{{Gateway: addr(tc.gwA)}, {Gateway: addr(tc.gwB)}}}}}
			if err := b.Set(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			shown := func() string {
				out := ip(t, "-n", n.NS, "-4", "route", "show", "proto", "107") + ip(t, "-n", n.NS, "-6", "route", "show", "proto", "107")
				return strings.Join(strings.Fields(out), " ")
			}
			whole := "nexthop via " + tc.gwA + " dev " + hostA + " weight 1 nexthop via " + tc.gwB + " dev " + hostB + " weight 1"
			if got := shown(); !strings.Contains(got, whole) {
				t.Fatalf("kernel after the Set: %q, want %q", got, whole)
			}
			time.Sleep(300 * time.Millisecond) // the Set's own events read
			drainDrifts(drifts)

			ip(t, "-n", n.NS, "addr", "del", tc.other, "dev", n.Dev)
			if err := b.Patch(ctx, route.Patch{}); err != nil {
				t.Fatalf("patch after an address on another link was deleted: %v", err)
			}

			ip(t, "-n", n.NS, "link", "set", hostA, "down")
			waitFor(t, 5*time.Second, func() bool { return strings.Contains(shown(), "dead") })
			time.Sleep(600 * time.Millisecond) // two of Watch's rounds
			noDrift(t, drifts, "drift reported for a multipath route one of whose links went down")
			if err := b.Patch(ctx, route.Patch{}); err != nil {
				t.Fatalf("patch with one next hop's link down: %v", err)
			}

			ip(t, "-n", n.NS, "link", "del", hostA)
			waitFor(t, 5*time.Second, func() bool { return !strings.Contains(shown(), hostA) })
			if got := shown(); !strings.Contains(got, tc.dst) && tc.leftAfterAway != "" ||
				!strings.Contains(got, tc.leftAfterAway) || tc.leftAfterAway == "" && strings.Contains(got, tc.dst) {
				t.Fatalf("kernel once %s is gone: %q, want %q", hostA, got, tc.leftAfterAway)
			}
			time.Sleep(600 * time.Millisecond)
			if err := b.Patch(ctx, route.Patch{}); err != nil {
				t.Fatalf("patch within the grace: %v", err)
			}
			advance(time.Second)
			awaitDrift(t, drifts, "no drift for a multipath route changed by its link's going, past its grace")
			err := b.Patch(ctx, route.Patch{})
			if !errors.Is(err, route.ErrNoBase) || !strings.Contains(err.Error(), "was removed by the kernel") {
				t.Fatalf("patch past the grace: %v, want ErrNoBase for a route removed by the kernel", err)
			}
			if err := b.Set(ctx, cfg); err == nil {
				t.Fatal("whole Set with a next hop's link gone: no item error")
			}
			if st := b.Status(); len(st.Routes) != 1 || st.Routes[0].State != route.StateFailed || st.ReadKernel {
				t.Fatalf("status with a next hop's link gone: %+v, read the kernel %t; want failed, from the cache", st.Routes, st.ReadKernel)
			}

			time.Sleep(300 * time.Millisecond)
			drainDrifts(drifts)
			makeLink(hostA, tc.addrA)
			awaitDrift(t, drifts, "no drift once the next hop's link is back")
			if err := b.Set(ctx, cfg); err != nil {
				t.Fatalf("whole Set with the link back: %v", err)
			}
			if got := shown(); !strings.Contains(got, whole) {
				t.Fatalf("kernel with the link back: %q, want %q", got, whole)
			}
		})
	}
}

// TestOutsideChangeDuringExchange: routes given only a gateway take the
// device of their run's one echoed add (resolve.go), which holds only if
// nobody changed addresses or routes during the exchange. When someone
// did (here, an address added right after the adds are acked, before the
// backend looks), the adds sent without an echo keep no device: the
// cache then cannot tell whether an address deleted on another link
// touches them, and drops itself (a Patch refuses) instead of trusting a
// device the kernel never said.
func TestOutsideChangeDuringExchange(t *testing.T) {
	n := newTestNet(t)
	ctx := context.Background()
	b := newBackend(t, n.NS)
	other := "kd" + randHex(3)
	ip(t, "-n", n.NS, "link", "add", other, "type", "veth", "peer", "name", "p"+other)
	ip(t, "-n", n.NS, "link", "set", other, "up")
	for _, a := range []string{"10.57.0.1/24", "10.58.0.1/24"} {
		ip(t, "-n", n.NS, "addr", "add", a, "dev", other)
	}
	via := func(dsts ...string) route.Config {
		var cfg route.Config
		for _, d := range dsts {
			cfg.Routes = append(cfg.Routes, route.Route{Dst: pfx(d), Gateway: addr("10.0.0.2")})
		}
		return cfg
	}
	// Quiet: the second route takes the first one's device, so an
	// address deleted on another link leaves the cache.
	if err := b.Set(ctx, via("10.90.0.0/24", "10.90.1.0/24")); err != nil {
		t.Fatal(err)
	}
	ip(t, "-n", n.NS, "addr", "del", "10.57.0.1/24", "dev", other)
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch after an address on another link was deleted, nothing changed during the Set: %v", err)
	}
	// Someone else's change during the exchange: the next run's second
	// add keeps no device.
	kernel.OnExchange(b, func() { ip(t, "-n", n.NS, "addr", "add", "10.59.0.1/24", "dev", other) })
	if err := b.Set(ctx, via("10.90.0.0/24", "10.90.1.0/24", "10.90.2.0/24", "10.90.3.0/24")); err != nil {
		t.Fatal(err)
	}
	kernel.OnExchange(b, nil)
	ip(t, "-n", n.NS, "addr", "del", "10.58.0.1/24", "dev", other)
	if err := b.Patch(ctx, route.Patch{}); !errors.Is(err, route.ErrNoBase) {
		t.Fatalf("patch after an address was deleted, a route's device only inferred during an outside change: %v, want ErrNoBase", err)
	}
}
