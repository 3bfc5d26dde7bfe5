package wgmesh

import (
	"net/netip"
	"time"
)

// PeerState is a peer's derived status, as written to the tree.
type PeerState string

// States the backend derives. Drained and posture-down are posture facts the
// backend cannot see; the reconciler sets them from the posture engine and
// package drain.
const (
	StateUp          PeerState = "up"           // handshake younger than StaleAfter
	StateStale       PeerState = "stale"        // had a handshake, now older than StaleAfter
	StatePending     PeerState = "pending"      // configured, no handshake yet, within FailAfter
	StateFailed      PeerState = "failed"       // no handshake after FailAfter, or config error
	StateDrained     PeerState = "drained"      // set by the reconciler
	StatePostureDown PeerState = "posture-down" // set by the reconciler from drain
)

// PeerStatus is one peer's live state.
type PeerStatus struct {
	Name          string
	PublicKey     string
	Endpoint      netip.AddrPort
	LastHandshake time.Time // zero: never
	RxBytes       int64
	TxBytes       int64
	State         PeerState
	Err           error // config error from the last Set, if any
}

// Status is the device's live state.
type Status struct {
	Interface  string
	PublicKey  string
	ListenPort int
	Peers      []PeerStatus // sorted by name
}
