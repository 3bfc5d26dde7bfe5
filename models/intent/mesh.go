package intent

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Mesh translates /kedge/mesh under the accord's overlay mode (the seed's
// overlay table) on top of base, which carries what the tree does not hold
// (the private key): full modes keep every peer, management-only keeps the
// peers marked critical, isolated keeps none. A peer without its own
// persistent keepalive gets the accord's. The interface, port, MTU and
// addresses come from /kedge/mesh/config when set there.
func Mesh(t *tree.Tree, a accord.Accord, base wgmesh.Config) wgmesh.Config {
	cfg := base
	cfg.Peers = nil
	cfg.Addresses = slices.Clone(base.Addresses)
	k := t.Root().Sub("kedge")
	if k == nil {
		return cfg
	}
	m := k.Sub("mesh")
	if m == nil {
		return cfg
	}
	if c := m.Sub("config"); c != nil {
		if v := c.Get("interface"); v.IsSet() {
			cfg.Interface = v.Str()
		}
		if v := c.Get("listen-port"); v.IsSet() {
			cfg.ListenPort = int(v.UintVal())
		}
		if v := c.Get("mtu"); v.IsSet() {
			cfg.MTU = int(v.UintVal())
		}
		if v := c.Get("addresses"); v.IsSet() {
			cfg.Addresses = prefixes(v)
		}
	}
	if a.OverlayMode == accord.OverlayIsolated {
		return cfg
	}
	peers := m.Sub("peers")
	if peers == nil {
		return cfg
	}
	peers.Entries("peer", func(in *tree.Inst) bool {
		c := in.Sub("config")
		if c == nil {
			return true
		}
		if a.OverlayMode == accord.OverlayManagementOnly && !c.Get("critical").BoolVal() {
			return true
		}
		ka := time.Duration(a.KeepaliveSeconds) * time.Second
		if v := c.Get("persistent-keepalive"); v.IsSet() {
			ka = time.Duration(v.UintVal()) * time.Second
		}
		cfg.Peers = append(cfg.Peers, wgmesh.Peer{
			Name:                in.Keys()[0].Str(),
			PublicKey:           c.Get("public-key").Str(),
			Endpoint:            c.Get("endpoint").Str(),
			AllowedIPs:          prefixes(c.Get("allowed-ips")),
			PersistentKeepalive: ka,
		})
		return true
	})
	slices.SortFunc(cfg.Peers, func(x, y wgmesh.Peer) int { return strings.Compare(x.Name, y.Name) })
	return cfg
}

func prefixes(v tree.Value) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range v.Elems() {
		if p, err := netip.ParsePrefix(e.Str()); err == nil {
			out = append(out, p)
		}
	}
	return out
}
