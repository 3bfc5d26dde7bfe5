package wgdevice_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
)

// countingWG counts ConfigureDevice calls through the backend's chokepoint.
type countingWG struct {
	*wgctrl.Client
	configures atomic.Int32
}

func (c *countingWG) ConfigureDevice(name string, cfg wgtypes.Config) error {
	c.configures.Add(1)
	return c.Client.ConfigureDevice(name, cfg)
}

func pubKey(t *testing.T) string {
	k, err := wgtypes.GeneratePrivateKey()
	must(t, "generate key", err)
	return k.PublicKey().String()
}

// A repeated Set makes no ConfigureDevice call; bad peers fail alone, named,
// and leave their live state alone; the rest of the mesh is applied.
func TestSetIdempotentAndBadPeers(t *testing.T) {
	l := newLab(t, 1)
	n := l.nodes[0]
	c, err := wgctrl.New()
	must(t, "wgctrl", err)
	t.Cleanup(func() { c.Close() })
	cw := &countingWG{Client: c}
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "anchor.example" {
			return []netip.Addr{netip.MustParseAddr("10.200.0.9")}, nil
		}
		return nil, errors.New("no such host")
	}
	be, err := wgdevice.New(wgdevice.Options{Netns: n.ns, WireGuard: cw, Resolve: resolve, InitiatorDelay: -1})
	must(t, "new backend", err)
	t.Cleanup(func() { be.Close() })
	ctx := context.Background()

	good := func(name, addr string) wgmesh.Peer {
		return wgmesh.Peer{Name: name, PublicKey: pubKey(t), Endpoint: "anchor.example:51820",
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix(addr)}, PersistentKeepalive: 25 * time.Second}
	}
	cfg := n.config()
	cfg.Peers = []wgmesh.Peer{good("a", "10.77.0.1/32"), good("b", "10.77.0.2/32"), good("c", "10.77.0.3/32")}
	must(t, "first set", be.Set(ctx, cfg))
	before := cw.configures.Load()
	must(t, "repeat set", be.Set(ctx, cfg))
	if got := cw.configures.Load() - before; got != 0 {
		t.Errorf("repeat Set made %d ConfigureDevice calls, want 0", got)
	}

	dup := pubKey(t)
	bad := cfg
	bad.Peers = append([]wgmesh.Peer{}, cfg.Peers...)
	bad.Peers[2].Endpoint = "gone.invalid:51820" // c was live: must stay as it was
	bad.Peers = append(bad.Peers,
		good("d", "10.77.0.4/32"),
		wgmesh.Peer{Name: "malformed", PublicKey: "not-a-key", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.5/32")}},
		wgmesh.Peer{Name: "dup1", PublicKey: dup, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.6/32")}},
		wgmesh.Peer{Name: "dup2", PublicKey: dup, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.7/32")}},
		wgmesh.Peer{Name: "thief", PublicKey: pubKey(t), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/32")}},
	)
	err = be.Set(ctx, bad)
	wantErrs := map[string]error{
		"c": wgmesh.ErrUnresolvable, "malformed": wgmesh.ErrBadKey, "dup1": wgmesh.ErrDuplicateKey,
		"dup2": wgmesh.ErrDuplicateKey, "thief": wgmesh.ErrPrefixConflict,
	}
	for name, sentinel := range wantErrs {
		if !strings.Contains(err.Error(), `peer "`+name+`"`) {
			t.Errorf("error does not name peer %s: %v", name, err)
		}
		if !errors.Is(err, sentinel) {
			t.Errorf("error does not wrap %v: %v", sentinel, err)
		}
	}
	var pe *wgmesh.PeerError
	if !errors.As(err, &pe) {
		t.Errorf("error is not a *PeerError: %v", err)
	}
	d, derr := c.Device(n.iface)
	must(t, "read device", derr)
	got := map[string]string{}
	for _, p := range d.Peers {
		got[p.PublicKey.String()] = p.Endpoint.String()
	}
	for _, p := range bad.Peers {
		_, on := got[p.PublicKey]
		wantOn := map[string]bool{"a": true, "b": true, "c": true, "d": true}[p.Name]
		if on != wantOn {
			t.Errorf("peer %s on device = %v, want %v", p.Name, on, wantOn)
		}
	}
	if len(d.Peers) != 4 {
		t.Errorf("device has %d peers, want 4 (a, b, c kept, d)", len(d.Peers))
	}
	if ep := got[cfg.Peers[2].PublicKey]; ep != "10.200.0.9:51820" {
		t.Errorf("c's endpoint = %s, want the old 10.200.0.9:51820 kept", ep)
	}
	st, serr := be.Status()
	must(t, "status", serr)
	states := map[string]wgmesh.PeerState{}
	for _, p := range st.Peers {
		states[p.Name] = p.State
	}
	if states["malformed"] != wgmesh.StateFailed || states["d"] != wgmesh.StatePending {
		t.Errorf("states = %v, want malformed failed, d pending", states)
	}
	// c could not be applied but is still live: still known, with its error.
	for _, p := range st.Peers {
		if p.Name == "c" && !errors.Is(p.Err, wgmesh.ErrUnresolvable) {
			t.Errorf("c's status error = %v, want ErrUnresolvable", p.Err)
		}
	}
	if name, ok := be.PeerForAddr(netip.MustParseAddr("10.77.0.3")); name != "c" || !ok {
		t.Errorf("PeerForAddr(10.77.0.3) = %q, %v; want c (kept live)", name, ok)
	}
}

// A daemon restart (the backend closed and a new one started against the
// device a sidecar keeps) neither reconfigures nor drops the live mesh.
func TestRestartAdoptsLiveDevice(t *testing.T) {
	l := newLab(t, 2)
	start := time.Now()
	l.setAll(t)
	l.waitHandshakes(t, l.nodes, start, 10*time.Second)
	n0, n1 := l.nodes[0], l.nodes[1]
	n1.serveEcho(t)
	// Let the deferred keepalive (if n0 is the answering side) land, so the
	// device holds the whole config before the "restart".
	waitFor(t, "keepalives set", 5*time.Second, func() bool {
		d, err := l.wg.Device(n0.iface)
		return err == nil && len(d.Peers) == 1 && d.Peers[0].PersistentKeepaliveInterval == 25*time.Second
	})
	before, err := l.wg.Device(n0.iface)
	must(t, "read device", err)
	must(t, "close backend", n0.be.Close())

	c, err := wgctrl.New()
	must(t, "wgctrl", err)
	t.Cleanup(func() { c.Close() })
	cw := &countingWG{Client: c}
	be, err := wgdevice.New(wgdevice.Options{Netns: n0.ns, WireGuard: cw})
	must(t, "new backend", err)
	t.Cleanup(func() { be.Close() })
	must(t, "set after restart", be.Set(context.Background(), n0.config()))
	if n := cw.configures.Load(); n != 0 {
		t.Errorf("Set after restart made %d ConfigureDevice calls, want 0", n)
	}
	after, err := l.wg.Device(n0.iface)
	must(t, "read device", err)
	if !after.Peers[0].LastHandshakeTime.Equal(before.Peers[0].LastHandshakeTime) {
		t.Errorf("session renegotiated across restart: handshake %v -> %v",
			before.Peers[0].LastHandshakeTime, after.Peers[0].LastHandshakeTime)
	}
	if !n0.echo(t, n1.tunnel, 2*time.Second) {
		t.Errorf("no echo after restart")
	}
}

// TestTunnelAddressMovesWithinItsSubnet: the node's tunnel address
// replaced by another in its subnet ends with the new one on the link.
// The new address joins as a secondary of the old, and by the kernel's
// default deleting a primary deletes its secondaries: the link was left
// with no tunnel address until something else changed.
func TestTunnelAddressMovesWithinItsSubnet(t *testing.T) {
	l := newLab(t, 1)
	n := l.nodes[0]
	be, err := wgdevice.New(wgdevice.Options{Netns: n.ns, InitiatorDelay: -1})
	must(t, "new backend", err)
	t.Cleanup(func() { be.Close() })
	h := handleAt(t, n.ns)
	t.Cleanup(h.Close)
	cfg := n.config()
	for _, addrs := range [][]string{{"10.78.0.1/24"}, {"10.78.0.5/24"}, {"10.78.0.5/24", "10.78.0.6/24"}, {"10.78.0.6/24"}} {
		cfg.Addresses = cfg.Addresses[:0]
		for _, a := range addrs {
			cfg.Addresses = append(cfg.Addresses, netip.MustParsePrefix(a))
		}
		must(t, "set addresses", be.Set(context.Background(), cfg))
		link, err := h.LinkByName(n.iface)
		must(t, "find link", err)
		as, err := h.AddrList(link, unix.AF_INET)
		must(t, "list addresses", err)
		var got []string
		for _, a := range as {
			got = append(got, a.IPNet.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, addrs) {
			t.Errorf("addresses %v set: the link holds %v", addrs, got)
		}
	}
}
