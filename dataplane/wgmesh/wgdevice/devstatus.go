package wgdevice

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Status reads the device through wgctrl and derives each peer's state. Peers
// the last Set rejected are listed as failed with their error.
func (b *Backend) Status() (wgmesh.Status, error) {
	b.mu.Lock()
	iface, names, since, perrs := b.iface, b.names, b.since, b.peerErrs
	b.mu.Unlock()
	if iface == "" {
		return wgmesh.Status{}, fmt.Errorf("read status: no Set yet")
	}
	dev, err := b.wg.Device(iface)
	if err != nil {
		return wgmesh.Status{}, fmt.Errorf("read device %s: %w", iface, err)
	}
	now := b.opts.Now()
	st := wgmesh.Status{Interface: dev.Name, PublicKey: dev.PublicKey.String(), ListenPort: dev.ListenPort}
	seen := map[string]bool{}
	for _, p := range dev.Peers {
		name, ok := names[p.PublicKey]
		if !ok {
			continue // a throwaway peer mid-Set, or one Set has yet to remove
		}
		seen[name] = true
		st.Peers = append(st.Peers, wgmesh.PeerStatus{
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
			st.Peers = append(st.Peers, wgmesh.PeerStatus{Name: name, State: wgmesh.StateFailed, Err: err})
			continue
		}
		for i := range st.Peers {
			if st.Peers[i].Name == name {
				st.Peers[i].Err = err
			}
		}
	}
	slices.SortFunc(st.Peers, func(x, y wgmesh.PeerStatus) int { return strings.Compare(x.Name, y.Name) })
	return st, nil
}

// Peers is Status().Peers.
func (b *Backend) Peers() ([]wgmesh.PeerStatus, error) {
	st, err := b.Status()
	return st.Peers, err
}

func (b *Backend) derive(now time.Time, p wgtypes.Peer, since time.Time) wgmesh.PeerState {
	if !p.LastHandshakeTime.IsZero() {
		if now.Sub(p.LastHandshakeTime) > b.opts.StaleAfter {
			return wgmesh.StateStale
		}
		return wgmesh.StateUp
	}
	if now.Sub(since) > b.opts.FailAfter {
		return wgmesh.StateFailed
	}
	return wgmesh.StatePending
}
