package intent

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// MeshPeer is one peer configured under /kedge/mesh/peers, with what the
// posture logic needs beyond the backend's wgmesh.Peer.
type MeshPeer struct {
	wgmesh.Peer
	// Critical peers carry management traffic and stay at
	// management-only levels.
	Critical bool
	// Reconnect is the peer's config/reconnect leaf (0 when unset): a
	// change of it lifts the peer's posture-down mark (see the yang).
	Reconnect uint64
}

// Handshake ages, from WireGuard's protocol constants: a session is
// re-keyed after RekeyAfterTime while traffic (keepalives included) flows
// and is unusable after RejectAfterTime.
const (
	rekeyAfterTime  = 120 * time.Second
	rejectAfterTime = 180 * time.Second
)

// StaleAfter is the handshake age past which a peer counts as stale under
// the accord: a live peer re-keys every two minutes, and the accord's
// health-check interval is the slack allowed twice before the peer is
// reported. At level 5 (30 s checks) that is WireGuard's own reject age,
// 180 s; level 4's faster checks (10 s) report a peer that missed its
// re-key after 140 s. Accords without health checks (isolated) use the
// reject age.
func StaleAfter(a accord.Accord) time.Duration {
	if a.HealthCheckSeconds == 0 {
		return rejectAfterTime
	}
	return min(rekeyAfterTime+2*time.Duration(a.HealthCheckSeconds)*time.Second, rejectAfterTime)
}

// MeshConfigured reports whether the tree describes a mesh at all (a leaf
// of /kedge/mesh/config, or any peer): only then does the node host a
// device.
func MeshConfigured(t *tree.Tree) bool {
	m := kedgetree.Of(t).Kedge().Mesh()
	if !m.Exists() {
		return false
	}
	// An emptied config container may stay in the tree; only a set leaf
	// counts.
	c := m.Config()
	_, iface := c.Interface()
	_, port := c.ListenPort()
	_, mtu := c.Mtu()
	if iface || port || mtu || len(c.Addresses()) > 0 {
		return true
	}
	return m.Peers().Peer().Len() > 0
}

// MeshPeers lists every configured peer, sorted by name, whatever the
// posture level; a peer without its own persistent keepalive (absent or 0)
// gets the accord's.
func MeshPeers(t *tree.Tree, a accord.Accord) []MeshPeer {
	var out []MeshPeer
	for in := range kedgetree.Of(t).Kedge().Mesh().Peers().Peer().All() {
		c := in.Config()
		if !c.Exists() {
			continue
		}
		ka := time.Duration(a.KeepaliveSeconds) * time.Second
		if v, ok := c.PersistentKeepalive(); ok && v > 0 {
			ka = time.Duration(v) * time.Second
		}
		name, _ := in.Name()
		key, _ := c.PublicKey()
		endpoint, _ := c.Endpoint()
		critical, _ := c.Critical()
		reconnect, _ := c.Reconnect()
		out = append(out, MeshPeer{
			Peer: wgmesh.Peer{
				Name:                name,
				PublicKey:           key,
				Endpoint:            endpoint,
				AllowedIPs:          prefixes(c.AllowedIps()),
				PersistentKeepalive: ka,
			},
			Critical:  critical,
			Reconnect: reconnect,
		})
	}
	slices.SortFunc(out, func(x, y MeshPeer) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// KeptBy reports whether the accord's overlay mode keeps p (the seed's
// overlay table): full modes keep every peer, management-only the
// critical ones, isolated none.
func KeptBy(a accord.Accord, p MeshPeer) bool {
	switch a.OverlayMode {
	case accord.OverlayIsolated:
		return false
	case accord.OverlayManagementOnly:
		return p.Critical
	}
	return true
}

// Mesh translates /kedge/mesh under the accord's overlay mode on top of
// base, which carries what the tree does not hold (the private key): the
// peers KeptBy the accord, with the accord's keepalive where a peer has
// none. The interface, port, MTU and addresses come from
// /kedge/mesh/config when set there. Level 5's standard keepalive and
// level 4's faster health checks differ only in StaleAfter, which the
// daemon applies when it reports peer state; level 3 keeps the mesh as is.
func Mesh(t *tree.Tree, a accord.Accord, base wgmesh.Config) wgmesh.Config {
	cfg := base
	cfg.Peers = nil
	cfg.Addresses = slices.Clone(base.Addresses)
	m := kedgetree.Of(t).Kedge().Mesh()
	if !m.Exists() {
		return cfg
	}
	c := m.Config()
	if v, ok := c.Interface(); ok {
		cfg.Interface = v
	}
	if v, ok := c.ListenPort(); ok {
		cfg.ListenPort = int(v)
	}
	if v, ok := c.Mtu(); ok {
		cfg.MTU = int(v)
	}
	if v := c.Addresses(); v != nil {
		cfg.Addresses = prefixes(v)
	}
	for _, p := range MeshPeers(t, a) {
		if KeptBy(a, p) {
			cfg.Peers = append(cfg.Peers, p.Peer)
		}
	}
	return cfg
}

// prefixes parses a leaf-list of ip-prefix values (the schema validated
// them; one that does not parse is skipped).
func prefixes(vs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range vs {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}
