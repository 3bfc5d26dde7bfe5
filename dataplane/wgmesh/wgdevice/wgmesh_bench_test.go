package wgdevice_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
)

// Each benchmark does its whole workload in one iteration (make bench runs
// -benchtime 1x): it builds a lab of network namespaces on a bridge, one
// wireguard-go device per node, and times several rounds internally.

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// resetPeers removes every peer from every node (through the backend) and
// waits until no device has any left.
func (l *lab) resetPeers(tb testing.TB) {
	for _, n := range l.nodes {
		cfg := n.config()
		cfg.Peers = nil
		must(tb, "reset", n.be.Set(context.Background(), cfg))
	}
}

// naiveSet configures n's mesh the way a first cut would: one wgctrl call
// per peer, replacing its allowed IPs, keepalive on at once.
func (l *lab) naiveSet(n *node) error {
	var errs []error
	for _, o := range l.nodes {
		if o == n {
			continue
		}
		ka := 25 * time.Second
		pc := wgtypes.PeerConfig{
			PublicKey:                   o.pub,
			Endpoint:                    net.UDPAddrFromAddrPort(netip.AddrPortFrom(o.underlay, wgPort)),
			PersistentKeepaliveInterval: &ka,
			ReplaceAllowedIPs:           true,
			AllowedIPs:                  []net.IPNet{{IP: o.tunnel.AsSlice(), Mask: net.CIDRMask(32, 32)}},
		}
		errs = append(errs, l.wg.ConfigureDevice(n.iface, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}}))
	}
	return errors.Join(errs...)
}

// converge applies every node's config concurrently with set and returns
// the time until all Sets returned and until every pair has handshaked.
func (l *lab) converge(tb testing.TB, set func(*node) error) (configured, handshaked time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(l.nodes))
	for i, n := range l.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = set(n)
		}()
	}
	wg.Wait()
	configured = time.Since(start)
	must(tb, "configure", errors.Join(errs...))
	if err := l.handshaked(l.nodes, start, 2*time.Second); err != nil {
		tb.Logf("slow convergence: %v", err)
		l.dump(tb, start)
		if err := l.handshaked(l.nodes, start, 30*time.Second); err != nil {
			tb.Fatal(err)
		}
	}
	return configured, time.Since(start)
}

// BenchmarkMeshConvergence: config accepted to every pair handshaked, for
// 2, 5, 10 and 20 nodes, Backend.Set against one wgctrl call per peer.
// Each node is its own network namespace with its own wireguard-go device,
// all on one bridge.
func BenchmarkMeshConvergence(b *testing.B) {
	for _, size := range []int{2, 5, 10, 20} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			l := newLab(b, size)
			// Backend.Set rounds are cheap; a naive round usually waits out
			// WireGuard's 5 s retry, so it runs every third round.
			const rounds = 9
			for range b.N {
				var mine, naive, mineCfg, naiveCfg []time.Duration
				for r := range rounds {
					l.resetPeers(b)
					c, h := l.converge(b, func(n *node) error { return n.be.Set(context.Background(), n.config()) })
					mine, mineCfg = append(mine, h), append(mineCfg, c)
					if r%3 != 0 {
						continue
					}
					l.resetPeers(b)
					c, h = l.converge(b, l.naiveSet)
					naive, naiveCfg = append(naive, h), append(naiveCfg, c)
				}
				b.ReportMetric(ms(percentile(mine, 0.5)), "set-p50-ms")
				b.ReportMetric(ms(percentile(mine, 1)), "set-max-ms")
				b.ReportMetric(ms(percentile(mineCfg, 0.5)), "set-config-p50-ms")
				b.ReportMetric(ms(percentile(naive, 0.5)), "naive-p50-ms")
				b.ReportMetric(ms(percentile(naive, 1)), "naive-max-ms")
				b.ReportMetric(ms(percentile(naiveCfg, 0.5)), "naive-config-p50-ms")
				b.ReportMetric(float64(percentile(naive, 0.5))/float64(percentile(mine, 0.5)), "naive/set-p50")
				b.Logf("nodes=%d set %v naive %v", size, mine, naive)
			}
		})
	}
}

// BenchmarkPostureTeardown20: a hub with 20 peers sends DRAIN to all of
// them, waits for every ACK and removes them (level 1); the peers, told by
// the notice, drop the hub. Restore (level 5): the peers clear posture-down,
// everyone Sets the full config again; timed to the hub's handshake with all
// 20.
func BenchmarkPostureTeardown20(b *testing.B) {
	const peers = 20
	l := newLab(b, peers+1)
	hub, spokes := l.nodes[0], l.nodes[1:]
	// Hub and spokes only: each spoke has the hub as its one peer.
	spokeCfg := func(n *node) wgmesh.Config {
		c := n.config()
		c.Peers = []wgmesh.Peer{hub.peerOf()}
		return c
	}
	trackers := make([]*drain.Tracker, len(spokes))
	events := make(chan int, 4*peers)
	for i := range spokes {
		trackers[i] = drain.NewTracker(func(drain.Event) { events <- i })
	}
	ctx := context.Background()
	setAll := func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); must(b, "hub set", hub.be.Set(ctx, hub.config())) }()
		for _, n := range spokes {
			wg.Add(1)
			go func() { defer wg.Done(); must(b, "spoke set", n.be.Set(ctx, spokeCfg(n))) }()
		}
		wg.Wait()
	}
	start := time.Now()
	setAll()
	l.waitHandshakes(b, l.nodes, start, 30*time.Second)
	for i, n := range spokes {
		ln, err := drain.Listen(drain.ListenerConfig{Device: n.iface, Addr: n.tunnel, Netns: n.ns,
			Lookup: n.be.PeerForAddr, Tracker: trackers[i]})
		must(b, "listen", err)
		b.Cleanup(func() { ln.Close() })
	}
	snd, err := drain.NewSender(drain.SenderConfig{Node: hub.name, Device: hub.iface, Netns: hub.ns})
	must(b, "sender", err)
	b.Cleanup(func() { snd.Close() })
	targets := map[string]netip.Addr{}
	for _, n := range spokes {
		targets[n.name] = n.tunnel
	}

	for range b.N {
		var drains, removes, teardowns, restores []time.Duration
		for range 5 {
			t0 := time.Now()
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res := snd.Drain(dctx, 1, targets)
			cancel()
			for name, err := range res {
				must(b, "drain "+name, err)
			}
			t1 := time.Now()
			down := hub.config()
			down.Peers = nil
			must(b, "hub teardown", hub.be.Set(ctx, down))
			t2 := time.Now()
			drains, removes, teardowns = append(drains, t1.Sub(t0)), append(removes, t2.Sub(t1)), append(teardowns, t2.Sub(t0))
			// Spokes react to the notice as the daemon will: hold the hub
			// posture-down and drop it.
			for range spokes {
				select {
				case i := <-events:
					n := spokes[i]
					c := spokeCfg(n)
					c.Peers = trackers[i].Filter(c.Peers)
					must(b, "spoke drop hub", n.be.Set(ctx, c))
				case <-time.After(5 * time.Second):
					b.Fatal("missing posture-down event")
				}
			}
			for i := range spokes {
				trackers[i].Clear(hub.name)
			}
			t3 := time.Now()
			setAll()
			l.waitHandshakes(b, []*node{hub}, t3, 30*time.Second)
			restores = append(restores, time.Since(t3))
		}
		b.ReportMetric(ms(percentile(teardowns, 0.5)), "teardown-p50-ms")
		b.ReportMetric(ms(percentile(teardowns, 1)), "teardown-max-ms")
		b.ReportMetric(ms(percentile(drains, 0.5)), "drain-acked-p50-ms")
		b.ReportMetric(ms(percentile(removes, 0.5)), "remove-p50-ms")
		b.ReportMetric(ms(percentile(restores, 0.5)), "restore-p50-ms")
		b.ReportMetric(ms(percentile(restores, 1)), "restore-max-ms")
		b.Logf("teardown %v restore %v", teardowns, restores)
	}
}

// dump logs, for every node, the peers without a handshake since start.
func (l *lab) dump(tb testing.TB, start time.Time) {
	names := map[wgtypes.Key]string{}
	for _, n := range l.nodes {
		names[n.pub] = n.name
	}
	for _, n := range l.nodes {
		d, err := l.wg.Device(n.iface)
		if err != nil {
			continue
		}
		for _, p := range d.Peers {
			if !p.LastHandshakeTime.After(start) {
				tb.Logf("  %s -> %s: handshake %v ka %v ep %v tx %d rx %d", n.name, names[p.PublicKey],
					p.LastHandshakeTime.Sub(start), p.PersistentKeepaliveInterval, p.Endpoint, p.TransmitBytes, p.ReceiveBytes)
			}
		}
	}
}
