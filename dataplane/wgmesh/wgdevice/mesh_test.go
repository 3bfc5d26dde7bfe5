package wgdevice_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
)

// Three namespaces on a bridge, each with its own wireguard-go device,
// configured only through Backend.Set: every pair echoes over the tunnel,
// live peer and allowed-IP changes lose nothing, and a DRAIN before a
// level-1 teardown leaves the others with the node posture-down.
func TestMeshThreeNamespaces(t *testing.T) {
	l := newLab(t, 3)
	start := time.Now()
	l.setAll(t)
	l.waitHandshakes(t, l.nodes, start, 10*time.Second)
	for _, n := range l.nodes {
		n.serveEcho(t)
	}

	t.Run("echo every pair", func(t *testing.T) {
		for _, a := range l.nodes {
			for _, b := range l.nodes {
				if a != b && !a.echo(t, b.tunnel, 2*time.Second) {
					t.Errorf("%s -> %s (%s): no echo", a.name, b.name, b.tunnel)
				}
			}
		}
		// The echo went through WireGuard: every peer counted bytes both ways.
		for _, n := range l.nodes {
			d, err := l.wg.Device(n.iface)
			must(t, "read device", err)
			if len(d.Peers) != 2 {
				t.Errorf("%s has %d peers, want 2", n.name, len(d.Peers))
			}
			for _, p := range d.Peers {
				if p.LastHandshakeTime.IsZero() || p.ReceiveBytes == 0 || p.TransmitBytes == 0 {
					t.Errorf("%s peer %s: handshake %v rx %d tx %d", n.name, p.PublicKey, p.LastHandshakeTime, p.ReceiveBytes, p.TransmitBytes)
				}
			}
			st, err := n.be.Status()
			must(t, "status", err)
			for _, p := range st.Peers {
				if p.State != wgmesh.StateUp || p.RxBytes == 0 {
					t.Errorf("%s status of %s = %s rx %d, want up with bytes", n.name, p.Name, p.State, p.RxBytes)
				}
			}
		}
	})

	t.Run("live changes lose nothing", func(t *testing.T) {
		n0, n1, n2 := l.nodes[0], l.nodes[1], l.nodes[2]
		s := n0.startStream(t, n1.tunnel, time.Millisecond)
		waitFor(t, "stream running", 5*time.Second, func() bool { return s.got.Load() > 50 })
		ctx := context.Background()
		extra := netip.MustParsePrefix(netip.AddrFrom4([4]byte{10, l.s, 9, 0}).String() + "/24")
		steps := []struct {
			name string
			edit func(c *wgmesh.Config)
		}{
			{"grow n1's allowed ips", func(c *wgmesh.Config) { c.Peers[0].AllowedIPs = append(c.Peers[0].AllowedIPs, extra) }},
			{"shrink n1's allowed ips", func(c *wgmesh.Config) {}},
			{"move extra to n2", func(c *wgmesh.Config) { c.Peers[1].AllowedIPs = append(c.Peers[1].AllowedIPs, extra) }},
			{"remove n2", func(c *wgmesh.Config) { c.Peers = c.Peers[:1] }},
			{"add n2 back", func(c *wgmesh.Config) {}},
			{"change keepalive of n1", func(c *wgmesh.Config) { c.Peers[0].PersistentKeepalive = 10 * time.Second }},
			{"restore", func(c *wgmesh.Config) {}},
		}
		for _, st := range steps {
			cfg := n0.config() // peers: n1, n2
			st.edit(&cfg)
			if err := n0.be.Set(ctx, cfg); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			// The device holds exactly what was asked: no throwaway peers.
			d, err := l.wg.Device(n0.iface)
			must(t, "read device", err)
			var got, want []string
			for _, p := range d.Peers {
				for _, a := range p.AllowedIPs {
					got = append(got, p.PublicKey.String()+" "+a.String())
				}
			}
			for _, p := range cfg.Peers {
				for _, a := range p.AllowedIPs {
					want = append(want, p.PublicKey+" "+a.String())
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: device allowed ips (-want +got):\n%s", st.name, diff)
			}
			at := s.got.Load()
			waitFor(t, "traffic after "+st.name, 5*time.Second, func() bool { return s.got.Load() > at+20 })
		}
		// The same from n1's side, to n2, while n0 keeps streaming to n1.
		cfg := n1.config()
		cfg.Peers = cfg.Peers[:1] // n0 only
		must(t, "n1 drops n2", n1.be.Set(ctx, cfg))
		must(t, "n1 restores", n1.be.Set(ctx, n1.config()))
		sent, got := s.finish()
		t.Logf("stream n0 -> n1: sent %d, echoed %d", sent, got)
		if sent < 100 || got != sent {
			t.Errorf("stream n0 -> n1 lost %d of %d datagrams during live changes", sent-got, sent)
		}
		if !n2.echo(t, n0.tunnel, 5*time.Second) {
			t.Errorf("n2 -> n0 does not echo after re-adding")
		}
	})

	t.Run("drain then teardown then restore", func(t *testing.T) {
		n0 := l.nodes[0]
		ctx := context.Background()
		trackers := map[string]*drain.Tracker{}
		events := make(chan drain.Event, 4)
		for _, n := range l.nodes[1:] {
			tr := drain.NewTracker(func(ev drain.Event) { events <- ev })
			trackers[n.name] = tr
			ln, err := drain.Listen(drain.ListenerConfig{
				Device: n.iface, Addr: n.tunnel, Netns: n.ns, Lookup: n.be.PeerForAddr, Tracker: tr,
			})
			must(t, "listen", err)
			t.Cleanup(func() { ln.Close() })
		}
		snd, err := drain.NewSender(drain.SenderConfig{Node: n0.name, Device: n0.iface, Netns: n0.ns})
		must(t, "sender", err)
		defer snd.Close()

		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res := snd.Drain(dctx, 1, map[string]netip.Addr{"n1": l.nodes[1].tunnel, "n2": l.nodes[2].tunnel})
		cancel()
		for peer, err := range res {
			if err != nil {
				t.Errorf("drain to %s: %v", peer, err)
			}
		}
		// Level 1: n0 removes every remote peer; the others, told by the
		// notice, drop n0 and hold it down.
		cfg := n0.config()
		cfg.Peers = nil
		must(t, "n0 teardown", n0.be.Set(ctx, cfg))
		for range 2 {
			select {
			case ev := <-events:
				if ev.Peer != "n0" || ev.Level != 1 {
					t.Errorf("event %+v, want peer n0 level 1", ev)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("no posture-down event")
			}
		}
		for _, n := range l.nodes[1:] {
			tr := trackers[n.name]
			if _, down := tr.Down("n0"); !down {
				t.Errorf("%s does not hold n0 posture-down", n.name)
			}
			c := n.config()
			c.Peers = tr.Filter(c.Peers)
			if len(c.Peers) != 1 {
				t.Errorf("%s filtered peers = %d, want 1 (n0 held down)", n.name, len(c.Peers))
			}
			must(t, n.name+" drops n0", n.be.Set(ctx, c))
		}
		if l.nodes[1].echo(t, n0.tunnel, 300*time.Millisecond) {
			t.Errorf("n1 -> n0 still echoes after teardown")
		}
		if !l.nodes[1].echo(t, l.nodes[2].tunnel, 2*time.Second) {
			t.Errorf("n1 -> n2 lost by n0's teardown")
		}

		// De-escalation: the others are told to let n0 back, all Set the full mesh.
		restore := time.Now()
		for _, n := range l.nodes[1:] {
			if !trackers[n.name].Clear("n0") {
				t.Errorf("%s: Clear(n0) found nothing to clear", n.name)
			}
		}
		l.setAll(t)
		l.waitHandshakes(t, []*node{n0}, restore, 10*time.Second)
		for _, n := range l.nodes[1:] {
			if !n.echo(t, n0.tunnel, 2*time.Second) || !n0.echo(t, n.tunnel, 2*time.Second) {
				t.Errorf("n0 <-> %s does not echo after restore", n.name)
			}
		}
	})
}
