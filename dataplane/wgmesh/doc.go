// Package wgmesh is the WireGuard mesh backend's contract: the plain
// Config (interface, key, port, MTU, addresses, peers), the Status it
// reports, the errors peers fail with, the node's Key and its key file,
// and the Backend interface. It imports no kernel or WireGuard control
// library, so the intent code that builds Configs (models/intent) links
// none: the implementation over wgctrl and netlink is package
// wgmesh/wgdevice, a recording fake is wgmesh/wgmeshtest (the model is
// Tailscale's wgengine/router and its osrouter).
//
// The device itself is hosted by package host (kernel WireGuard when the
// kernel has it, else an embedded wireguard-go device) or by the kedge-wg
// sidecar; the backend only needs to find it by name. Package drain
// carries the authenticated DRAIN notice sent over the tunnel before a
// posture-driven teardown.
//
// Wiring, for the daemon:
//
//	priv, pub, _ := wgmesh.LoadOrCreateKey(dataDir)       // pub goes to /kedge/mesh state
//	h, _ := host.Start(host.Config{Name: "kedge0"})       // or run cmd/kedge-wg as a sidecar
//	be, _ := wgdevice.New(wgdevice.Options{Logger: log})
//	err := be.Set(ctx, cfg)                               // on every change of /kedge/mesh
//	st, _ := be.Status()                                  // per-peer handshake, bytes, state → /state
//
// Posture maps onto Config: level 2 is a Config holding only critical peers,
// level 1 one with no peers, sent after drain.Sender.Drain has told each
// affected peer. A receiving node runs drain.Listen with be.PeerForAddr as
// Lookup; its Tracker says which peers are posture-down, and an anchor passes
// its peers through Tracker.Filter until a de-escalation calls Tracker.Clear.
package wgmesh

import (
	"context"
	"net/netip"
)

// Backend makes one node's mesh device match a Config. Its methods are
// safe for concurrent use.
type Backend interface {
	// Set makes the device match cfg, as a diff against what the device
	// has (live peers keep their sessions); Set twice changes nothing.
	// Invalid peers are reported as *PeerError and left as the device has
	// them; everything else is applied; all failures come back joined.
	Set(ctx context.Context, cfg Config) error
	// Status reads the device and derives each peer's state.
	Status() (Status, error)
	// PeerForAddr names the peer whose allowed IPs (as last applied)
	// contain a tunnel source address, longest prefix first.
	PeerForAddr(addr netip.Addr) (string, bool)
	// Close releases the backend's handles; the device and its peers stay.
	Close() error
}
