package wgdevice

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// wantPeer is a validated, resolved Peer.
type wantPeer struct {
	name      string
	key       wgtypes.Key
	endpoint  netip.AddrPort // invalid: leave whatever the device has
	allowed   []netip.Prefix // masked, sorted, unique
	keepalive time.Duration
}

// unit is the part of a change that belongs to one peer; units can be sent
// together or, to isolate a failure, one wgctrl call each.
type unit struct {
	name  string
	peers []wgtypes.PeerConfig
}

// plan is the diff between the device and the desired state. Phase one adds
// and updates (including handing allowed IPs a peer loses to a throwaway
// peer); phase two removes. Nothing in phase two is needed for traffic to
// keep flowing, so it always runs after phase one.
type plan struct {
	privateKey *wgtypes.Key
	listenPort *int
	units      []unit
	removals   []wgtypes.PeerConfig
	endpoints  map[wgtypes.Key]netip.AddrPort // endpoints this plan sets
	// deferred holds new peers' keepalives held back so that this node
	// answers rather than initiates (see initiates); the backend sets them
	// a moment later.
	deferred map[wgtypes.Key]time.Duration
	// keepalives are the peers whose keepalive this plan sets outright.
	keepalives map[wgtypes.Key]bool
	// initiated are new peers this node initiates to at once.
	initiated map[wgtypes.Key]bool
}

// initiates reports whether this node initiates the first handshake with a
// new peer (see initiator.go): the node with the smaller public key does.
func initiates(own, peer wgtypes.Key) bool {
	return bytes.Compare(own[:], peer[:]) < 0
}

func (p plan) empty() bool {
	return p.privateKey == nil && p.listenPort == nil && len(p.units) == 0 && len(p.removals) == 0
}

// phaseOne is the single wgctrl call that carries every add and update.
func (p plan) phaseOne() (wgtypes.Config, bool) {
	c := wgtypes.Config{PrivateKey: p.privateKey, ListenPort: p.listenPort}
	for _, u := range p.units {
		c.Peers = append(c.Peers, u.peers...)
	}
	return c, p.privateKey != nil || p.listenPort != nil || len(c.Peers) > 0
}

// makePlan diffs dev against the desired config. keep holds keys of peers
// whose desired entry was invalid: they are left exactly as the device has
// them. lastEP is what the backend last set per peer; an endpoint is only
// re-set when the desired one changed, so a peer that roamed is not pulled
// back on every Set. temp mints the throwaway peer key when one is needed.
// pendingKA holds keepalives deferred by an earlier plan and not yet set:
// they count as applied.
func makePlan(dev *wgtypes.Device, cfg wgmesh.Config, want []wantPeer, keep map[wgtypes.Key]bool,
	lastEP map[wgtypes.Key]netip.AddrPort, pendingKA map[wgtypes.Key]time.Duration, temp func() wgtypes.Key) plan {
	p := plan{
		endpoints:  map[wgtypes.Key]netip.AddrPort{},
		deferred:   map[wgtypes.Key]time.Duration{},
		keepalives: map[wgtypes.Key]bool{},
		initiated:  map[wgtypes.Key]bool{},
	}
	own := wgtypes.Key(cfg.PrivateKey.PublicKey())
	if dev.PrivateKey != wgtypes.Key(cfg.PrivateKey) {
		k := wgtypes.Key(cfg.PrivateKey)
		p.privateKey = &k
	}
	if cfg.ListenPort != 0 && dev.ListenPort != cfg.ListenPort {
		port := cfg.ListenPort
		p.listenPort = &port
	}

	have := make(map[wgtypes.Key]*wgtypes.Peer, len(dev.Peers))
	for i := range dev.Peers {
		have[dev.Peers[i].PublicKey] = &dev.Peers[i]
	}
	wanted := make(map[netip.Prefix]bool)
	desired := make(map[wgtypes.Key]bool, len(want))
	for _, w := range want {
		desired[w.key] = true
		for _, pfx := range w.allowed {
			wanted[pfx] = true
		}
	}

	var orphans []netip.Prefix // prefixes nobody wants any more, held by live peers
	var orphanUnit = -1
	for _, w := range want {
		cur, ok := have[w.key]
		if !ok {
			pc := wgtypes.PeerConfig{PublicKey: w.key, AllowedIPs: ipNets(w.allowed)}
			if w.endpoint.IsValid() {
				pc.Endpoint = net.UDPAddrFromAddrPort(w.endpoint)
				p.endpoints[w.key] = w.endpoint
			}
			ka := w.keepalive
			switch {
			case w.keepalive == 0:
			case w.endpoint.IsValid() && !initiates(own, w.key):
				p.deferred[w.key] = w.keepalive
				ka = 0
			default:
				p.keepalives[w.key] = true
				if w.endpoint.IsValid() {
					p.initiated[w.key] = true
				}
			}
			// Always explicit: wireguard-go keeps "keepalive just turned
			// on" across the peers of one set operation, so a peer without
			// the line would fire a keepalive, and so an initiation, because
			// the peer before it turned its keepalive on.
			pc.PersistentKeepaliveInterval = &ka
			p.units = append(p.units, unit{name: w.name, peers: []wgtypes.PeerConfig{pc}})
			continue
		}
		pc := wgtypes.PeerConfig{PublicKey: w.key, UpdateOnly: true}
		changed := false
		if w.endpoint.IsValid() && lastEP[w.key] != w.endpoint && udpAddrPort(cur.Endpoint) != w.endpoint {
			pc.Endpoint = net.UDPAddrFromAddrPort(w.endpoint)
			changed = true
		}
		if w.endpoint.IsValid() {
			p.endpoints[w.key] = w.endpoint
		}
		curKA := cur.PersistentKeepaliveInterval
		if v, ok := pendingKA[w.key]; ok && curKA == 0 {
			curKA = v
		}
		ka := cur.PersistentKeepaliveInterval // explicit, see above
		if curKA != w.keepalive {
			ka = w.keepalive
			p.keepalives[w.key] = true
			changed = true
		}
		pc.PersistentKeepaliveInterval = &ka
		curAllowed := prefixes(cur.AllowedIPs)
		var add []netip.Prefix
		for _, pfx := range w.allowed {
			if !slices.Contains(curAllowed, pfx) {
				add = append(add, pfx)
			}
		}
		if len(add) > 0 {
			pc.AllowedIPs = ipNets(add)
			changed = true
		}
		var lost []netip.Prefix
		for _, pfx := range curAllowed {
			if !slices.Contains(w.allowed, pfx) && !wanted[pfx] {
				lost = append(lost, pfx)
			}
		}
		if changed {
			p.units = append(p.units, unit{name: w.name, peers: []wgtypes.PeerConfig{pc}})
		}
		if len(lost) > 0 {
			if !changed {
				p.units = append(p.units, unit{name: w.name})
			}
			orphans = append(orphans, lost...)
			orphanUnit = len(p.units) - 1
		}
	}

	if len(orphans) > 0 {
		// Inserting a prefix for another peer moves it in one step, so the
		// live peer never has a moment without a route it keeps; the
		// throwaway peer is removed in phase two and takes the prefixes
		// with it.
		tk := temp()
		last := &p.units[orphanUnit]
		var zero time.Duration
		last.peers = append(last.peers, wgtypes.PeerConfig{PublicKey: tk, PersistentKeepaliveInterval: &zero, AllowedIPs: ipNets(orphans)})
		p.removals = append(p.removals, wgtypes.PeerConfig{PublicKey: tk, Remove: true})
	}

	for _, d := range dev.Peers {
		if desired[d.PublicKey] || keep[d.PublicKey] {
			continue
		}
		p.removals = append(p.removals, wgtypes.PeerConfig{PublicKey: d.PublicKey, Remove: true})
	}
	return p
}

func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		out = append(out, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return out
}

func prefixes(ns []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ns))
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, bits := n.Mask.Size()
		if bits == 32 {
			a = a.Unmap()
		}
		out = append(out, netip.PrefixFrom(a, ones).Masked())
	}
	return out
}

func udpAddrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
