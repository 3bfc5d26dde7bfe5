package wgmesh

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
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

// Status reads the device through wgctrl and derives each peer's state. Peers
// the last Set rejected are listed as failed with their error.
func (b *Backend) Status() (Status, error) {
	b.mu.Lock()
	iface, names, since, perrs := b.iface, b.names, b.since, b.peerErrs
	b.mu.Unlock()
	if iface == "" {
		return Status{}, fmt.Errorf("read status: no Set yet")
	}
	dev, err := b.wg.Device(iface)
	if err != nil {
		return Status{}, fmt.Errorf("read device %s: %w", iface, err)
	}
	now := b.opts.Now()
	st := Status{Interface: dev.Name, PublicKey: dev.PublicKey.String(), ListenPort: dev.ListenPort}
	seen := map[string]bool{}
	for _, p := range dev.Peers {
		name, ok := names[p.PublicKey]
		if !ok {
			continue // a throwaway peer mid-Set, or one Set has yet to remove
		}
		seen[name] = true
		st.Peers = append(st.Peers, PeerStatus{
			Name:          name,
			PublicKey:     p.PublicKey.String(),
			Endpoint:      udpAddrPort(p.Endpoint),
			LastHandshake: p.LastHandshakeTime,
			RxBytes:       p.ReceiveBytes,
			TxBytes:       p.TransmitBytes,
			State:         b.derive(now, p, since[p.PublicKey]),
		})
	}
	for name, err := range perrs {
		if !seen[name] {
			st.Peers = append(st.Peers, PeerStatus{Name: name, State: StateFailed, Err: err})
			continue
		}
		for i := range st.Peers {
			if st.Peers[i].Name == name {
				st.Peers[i].Err = err
			}
		}
	}
	slices.SortFunc(st.Peers, func(x, y PeerStatus) int { return strings.Compare(x.Name, y.Name) })
	return st, nil
}

// Peers is Status().Peers.
func (b *Backend) Peers() ([]PeerStatus, error) {
	st, err := b.Status()
	return st.Peers, err
}

func (b *Backend) derive(now time.Time, p wgtypes.Peer, since time.Time) PeerState {
	if !p.LastHandshakeTime.IsZero() {
		if now.Sub(p.LastHandshakeTime) > b.opts.StaleAfter {
			return StateStale
		}
		return StateUp
	}
	if now.Sub(since) > b.opts.FailAfter {
		return StateFailed
	}
	return StatePending
}
