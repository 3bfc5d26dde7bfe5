package wgmesh

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// DefaultInterface is the WireGuard interface name when Config.Interface is
// empty. Userspace devices publish their UAPI socket as
// /var/run/wireguard/<name>.sock, a path shared by every network namespace,
// so two userspace devices on one host need distinct names even when they
// live in different namespaces.
const DefaultInterface = "kedge0"

// DefaultListenPort is the UDP port of /kedge/mesh/config/listen-port's
// YANG default: the port a node uses when its tree names none.
const DefaultListenPort = 51820

// Config is the whole desired state of one node's mesh device.
type Config struct {
	// Interface is the WireGuard link name; empty means DefaultInterface.
	Interface string
	// PrivateKey is the node's key (see LoadOrCreateKey). Required.
	PrivateKey Key
	// ListenPort is the UDP port; 0 leaves the device's current port.
	ListenPort int
	// MTU of the link; 0 leaves it.
	MTU int
	// Addresses are the node's tunnel addresses with their prefix length,
	// e.g. 10.99.0.1/24.
	Addresses []netip.Prefix
	// Peers is the full peer list: peers on the device that are not listed
	// here are removed.
	Peers []Peer
}

// Peer is one remote node.
type Peer struct {
	// Name identifies the peer in errors and status (the tree's list key).
	Name string
	// PublicKey is the peer's base64 WireGuard public key.
	PublicKey string
	// Endpoint is "ip:port" or "host:port", resolved by the backend; empty
	// means the peer initiates and its endpoint is learned from it.
	Endpoint string
	// AllowedIPs are the prefixes routed to this peer.
	AllowedIPs []netip.Prefix
	// PersistentKeepalive is the keepalive interval; 0 disables it.
	PersistentKeepalive time.Duration
}

// PeerError is a problem with one peer: that peer is left as it was on the
// device and the rest of the mesh is applied.
type PeerError struct {
	Name string
	Err  error
}

func (e *PeerError) Error() string { return fmt.Sprintf("peer %q: %v", e.Name, e.Err) }

func (e *PeerError) Unwrap() error { return e.Err }

// Sentinels that a PeerError wraps, for callers that branch on the cause.
var (
	ErrBadKey         = errors.New("malformed public key")
	ErrDuplicateKey   = errors.New("duplicate public key")
	ErrUnresolvable   = errors.New("endpoint does not resolve")
	ErrBadPrefix      = errors.New("invalid allowed ip")
	ErrPrefixConflict = errors.New("allowed ip claimed by another peer")
	ErrOwnKey         = errors.New("public key is the node's own")
	ErrDeviceRejected = errors.New("device rejected peer")
)
