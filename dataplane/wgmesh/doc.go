// Package wgmesh is Kedge's WireGuard full-mesh backend. It takes a plain
// Config (interface, key, port, MTU, addresses, peers) and makes the device
// match it with Set, which talks to WireGuard only through wgctrl and to the
// link only through netlink, both via internal/wgsys. Peer changes are applied
// as diffs against what the device reports, never as a full replace, so live
// peers keep their sessions; allowed IPs that a peer loses are first handed to
// a throwaway peer and only then dropped, so no prefix is ever unrouted while
// it still belongs to someone. Because the diff is against the device, a
// restarted daemon adopts a live device without touching it.
//
// The device itself is hosted by package host (kernel WireGuard when the
// kernel has it, else an embedded wireguard-go device) or by the kedge-wg
// sidecar; the backend only needs to find it by name through wgctrl.
// Package drain carries the authenticated DRAIN notice sent over the tunnel
// before a posture-driven teardown.
//
// Wiring, for the daemon:
//
//	priv, pub, _ := wgmesh.LoadOrCreateKey(dataDir)       // pub goes to /kedge/mesh state
//	h, _ := host.Start(host.Config{Name: "kedge0"})       // or run cmd/kedge-wg as a sidecar
//	be, _ := wgmesh.New(wgmesh.Options{Logger: log})
//	err := be.Set(ctx, cfg)                               // on every change of /kedge/mesh
//	st, _ := be.Status()                                  // per-peer handshake, bytes, state → /state
//
// Posture maps onto Config: level 2 is a Config holding only critical peers,
// level 1 one with no peers, sent after drain.Sender.Drain has told each
// affected peer. A receiving node runs drain.Listen with be.PeerForAddr as
// Lookup; its Tracker says which peers are posture-down, and an anchor passes
// its peers through Tracker.Filter until a de-escalation calls Tracker.Clear.
package wgmesh
