package wgdevice

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func mustKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// render prints a plan as text, one wgctrl peer entry per line, so tests
// compare the whole change including its order.
func render(p plan, names map[wgtypes.Key]string) string {
	name := func(k wgtypes.Key) string {
		if n, ok := names[k]; ok {
			return n
		}
		return "TEMP"
	}
	var b strings.Builder
	if p.privateKey != nil {
		b.WriteString("private-key\n")
	}
	if p.listenPort != nil {
		b.WriteString("listen-port\n")
	}
	line := func(phase string, pc wgtypes.PeerConfig) {
		b.WriteString(phase + " " + name(pc.PublicKey))
		if pc.Remove {
			b.WriteString(" remove")
		}
		if pc.UpdateOnly {
			b.WriteString(" update")
		}
		if pc.ReplaceAllowedIPs {
			b.WriteString(" REPLACE")
		}
		if pc.Endpoint != nil {
			b.WriteString(" ep=" + pc.Endpoint.String())
		}
		if ka, ok := p.deferred[pc.PublicKey]; ok {
			// Which side initiates depends on the random keys; the
			// deferral itself is tested in TestInitiatorElection.
			b.WriteString(" ka=" + ka.String())
		} else if pc.PersistentKeepaliveInterval != nil && *pc.PersistentKeepaliveInterval != 0 {
			b.WriteString(" ka=" + pc.PersistentKeepaliveInterval.String())
		}
		for _, n := range pc.AllowedIPs {
			b.WriteString(" +" + n.String())
		}
		b.WriteString("\n")
	}
	for _, u := range p.units {
		for _, pc := range u.peers {
			line("1", pc)
		}
	}
	for _, pc := range p.removals {
		line("2", pc)
	}
	return b.String()
}

func devPeer(k wgtypes.Key, ep string, ka time.Duration, allowed ...string) wgtypes.Peer {
	p := wgtypes.Peer{PublicKey: k, PersistentKeepaliveInterval: ka, AllowedIPs: ipNets(pfx(allowed...))}
	if ep != "" {
		p.Endpoint = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ep))
	}
	return p
}

func TestMakePlan(t *testing.T) {
	priv := mustKey(t)
	ka, kb, kc, kd := mustKey(t).PublicKey(), mustKey(t).PublicKey(), mustKey(t).PublicKey(), mustKey(t).PublicKey()
	names := map[wgtypes.Key]string{ka: "a", kb: "b", kc: "c", kd: "d"}
	cfg := wgmesh.Config{Interface: "kw0", PrivateKey: wgmesh.Key(priv), ListenPort: 51820}
	ep := netip.MustParseAddrPort("10.0.0.2:51820")
	want := func(name string, k wgtypes.Key, allowed ...string) wantPeer {
		return wantPeer{name: name, key: k, endpoint: ep, allowed: pfx(allowed...), keepalive: 25 * time.Second}
	}
	tests := []struct {
		name   string
		dev    *wgtypes.Device
		want   []wantPeer
		keep   map[wgtypes.Key]bool
		lastEP map[wgtypes.Key]netip.AddrPort
		out    string
	}{{
		name: "empty device gets key, port and new peers in one phase",
		dev:  &wgtypes.Device{},
		want: []wantPeer{want("a", ka, "10.1.0.1/32"), want("b", kb, "10.1.0.2/32")},
		out: "private-key\nlisten-port\n" +
			"1 a ep=10.0.0.2:51820 ka=25s +10.1.0.1/32\n" +
			"1 b ep=10.0.0.2:51820 ka=25s +10.1.0.2/32\n",
	}, {
		name: "in sync: nothing",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "10.0.0.2:51820", 25*time.Second, "10.1.0.1/32")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32")},
		out:  "",
	}, {
		name: "roamed endpoint we already set is left alone",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "192.0.2.9:4000", 25*time.Second, "10.1.0.1/32")}},
		want:   []wantPeer{want("a", ka, "10.1.0.1/32")},
		lastEP: map[wgtypes.Key]netip.AddrPort{ka: ep},
		out:    "",
	}, {
		name: "growing allowed ips appends, never replaces",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "10.0.0.2:51820", 25*time.Second, "10.1.0.1/32")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32", "10.9.0.0/24")},
		out:  "1 a update ka=25s +10.9.0.0/24\n",
	}, {
		name: "shrinking hands the lost prefix to a throwaway peer, removed in phase two",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "10.0.0.2:51820", 25*time.Second, "10.1.0.1/32", "10.9.0.0/24")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32")},
		out:  "1 TEMP +10.9.0.0/24\n2 TEMP remove\n",
	}, {
		name: "a prefix moving between peers is just added to the new owner",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "10.0.0.2:51820", 25*time.Second, "10.1.0.1/32", "10.9.0.0/24"),
			devPeer(kb, "10.0.0.2:51820", 25*time.Second, "10.1.0.2/32")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32"), want("b", kb, "10.1.0.2/32", "10.9.0.0/24")},
		out:  "1 b update ka=25s +10.9.0.0/24\n",
	}, {
		name: "stale peers removed after adds; kept bad peers untouched",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(kc, "10.0.0.3:51820", 0, "10.1.0.3/32"),
			devPeer(kd, "10.0.0.4:51820", 0, "10.1.0.4/32")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32")},
		keep: map[wgtypes.Key]bool{kd: true},
		out:  "1 a ep=10.0.0.2:51820 ka=25s +10.1.0.1/32\n2 c remove\n",
	}, {
		name: "keepalive and endpoint change are updates",
		dev: &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
			devPeer(ka, "10.0.0.7:51820", 0, "10.1.0.1/32")}},
		want: []wantPeer{want("a", ka, "10.1.0.1/32")},
		out:  "1 a update ep=10.0.0.2:51820 ka=25s\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lastEP := tt.lastEP
			if lastEP == nil {
				lastEP = map[wgtypes.Key]netip.AddrPort{}
			}
			p := makePlan(tt.dev, cfg, tt.want, tt.keep, lastEP, nil, func() wgtypes.Key { return mustKey(t).PublicKey() })
			if diff := cmp.Diff(tt.out, render(p, names)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if (tt.out == "") != p.empty() {
				t.Errorf("empty() = %v for plan %q", p.empty(), tt.out)
			}
		})
	}
}

// Of two nodes adding each other, exactly one initiates at once; the other
// defers its keepalive, and the deferral counts as applied on the next plan.
func TestInitiatorElection(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	ep := netip.MustParseAddrPort("10.0.0.2:51820")
	deferred := 0
	for _, side := range []struct{ own, peer wgtypes.Key }{{a, b}, {b, a}} {
		cfg := wgmesh.Config{Interface: "kw0", PrivateKey: wgmesh.Key(side.own)}
		want := []wantPeer{{name: "p", key: side.peer.PublicKey(), endpoint: ep, allowed: pfx("10.1.0.1/32"), keepalive: 25 * time.Second}}
		p := makePlan(&wgtypes.Device{PrivateKey: side.own}, cfg, want, nil, map[wgtypes.Key]netip.AddrPort{}, nil, nil)
		pc := p.units[0].peers[0]
		if _, ok := p.deferred[pc.PublicKey]; ok {
			deferred++
			if pc.PersistentKeepaliveInterval == nil || *pc.PersistentKeepaliveInterval != 0 {
				t.Errorf("deferred peer's keepalive = %v, want an explicit 0", pc.PersistentKeepaliveInterval)
			}
			// Next plan: the device shows keepalive 0, the pending one counts.
			dev := &wgtypes.Device{PrivateKey: side.own, Peers: []wgtypes.Peer{devPeer(pc.PublicKey, ep.String(), 0, "10.1.0.1/32")}}
			again := makePlan(dev, cfg, want, nil, p.endpoints, p.deferred, nil)
			if !again.empty() {
				t.Errorf("plan after deferral not empty: %q", render(again, nil))
			}
		}
	}
	if deferred != 1 {
		t.Errorf("%d of 2 sides deferred, want exactly 1", deferred)
	}
}
