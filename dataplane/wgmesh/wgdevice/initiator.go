package wgdevice

import (
	"net"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Fast first handshakes. WireGuard retries a lost handshake initiation only
// after 5 s, and a new peer loses its first one in two common ways: the
// other node has not been told about us yet (the initiation is dropped), or
// both nodes initiate at once (the initiations cross, each response is
// invalid at the other side, and both wait out the retry).
//
// So one node of each pair initiates: the one with the smaller public key
// (initiates). It sets the keepalive at once, which sends the first
// initiation, and while it has heard nothing back from the peer it
// re-creates the peer at growing intervals (RetryAfter, doubling up to
// 4x RetryAfter, for RetryFor): a fresh peer may initiate immediately, and with no session yet
// nothing is lost. The other node holds its keepalive back for
// InitiatorDelay, answering instead of initiating; after that it sets it, so
// a pair whose initiator cannot reach it (no endpoint, NAT) still comes up.

// deferKeepalives remembers the keepalives the plan held back and the peers
// it initiated to, and arms the timers. Must hold b.mu.
func (b *Backend) deferKeepalives(p plan) {
	for k := range p.keepalives {
		delete(b.pending, k)
		delete(b.due, k)
	}
	for k := range b.pending {
		if _, ok := b.names[k]; !ok { // peer gone
			delete(b.pending, k)
			delete(b.due, k)
		}
	}
	for k := range b.watch {
		if _, ok := b.names[k]; !ok {
			delete(b.watch, k)
		}
	}
	now := b.opts.Now()
	delay := max(b.opts.InitiatorDelay, 0)
	for k, ka := range p.deferred {
		if _, ok := b.names[k]; ok { // applied, not failed
			b.pending[k] = ka
			b.due[k] = now.Add(delay)
		}
	}
	for k := range p.initiated {
		if _, ok := b.names[k]; ok {
			b.watch[k] = now
		}
	}
	if len(p.initiated) > 0 && b.opts.RetryAfter > 0 {
		// New peers restart the schedule: the newest may just now have
		// been told about us.
		b.retryIn = b.opts.RetryAfter
		if b.wtimer != nil {
			b.wtimer.Stop()
			b.wtimer = nil
		}
		b.armRetryLocked()
	}
	if b.opts.InitiatorDelay < 0 {
		b.flushKeepalivesLocked(now)
	}
	b.armLocked() // whatever is left: not yet due, or failed and retried
}

// armLocked (re)schedules the keepalive timer for the earliest due entry.
// Each deferral keeps its own deadline, so a Set shortly after another does
// not start its new peers' keepalives early.
func (b *Backend) armLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.due) == 0 || b.closed {
		return
	}
	var first time.Time
	for _, d := range b.due {
		if first.IsZero() || d.Before(first) {
			first = d
		}
	}
	b.timer = time.AfterFunc(max(first.Sub(b.opts.Now()), 0), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.timer = nil
		if !b.closed {
			b.flushKeepalivesLocked(b.opts.Now())
			b.armLocked()
		}
	})
}

// flushKeepalivesLocked sets the due keepalives in one call. For a peer that
// already initiated to us this only starts keepalives on the session.
func (b *Backend) flushKeepalivesLocked(now time.Time) {
	var peers []wgtypes.PeerConfig
	for k, ka := range b.pending {
		if b.due[k].After(now) {
			continue
		}
		peers = append(peers, wgtypes.PeerConfig{PublicKey: k, UpdateOnly: true, PersistentKeepaliveInterval: &ka})
	}
	if len(peers) == 0 {
		return
	}
	if err := b.wg.ConfigureDevice(b.iface, wgtypes.Config{Peers: peers}); err != nil {
		// Still pending, and Set counts pending as applied: retry here.
		b.log.Warn("wgmesh set deferred keepalives", "interface", b.iface, "error", err)
		for _, pc := range peers {
			b.due[pc.PublicKey] = now.Add(time.Second)
		}
		return
	}
	for _, pc := range peers {
		delete(b.pending, pc.PublicKey)
		delete(b.due, pc.PublicKey)
	}
}

func (b *Backend) armRetryLocked() {
	if len(b.watch) == 0 || b.wtimer != nil || b.closed {
		return
	}
	b.wtimer = time.AfterFunc(b.retryIn, b.retryHandshakes)
	// Grow, but only to 4x: in a mesh coming up, the peer we wait for is
	// usually being configured right now, and a long gap is pure delay.
	b.retryIn = min(2*b.retryIn, 4*b.opts.RetryAfter)
}

// retryHandshakes re-creates each watched peer that has sent nothing back.
func (b *Backend) retryHandshakes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wtimer = nil
	if b.closed || len(b.watch) == 0 {
		return
	}
	dev, err := b.wg.Device(b.iface)
	if err != nil {
		b.log.Warn("wgmesh handshake check", "interface", b.iface, "error", err)
		b.armRetryLocked()
		return
	}
	now := b.opts.Now()
	var peers []wgtypes.PeerConfig
	for _, p := range dev.Peers {
		since, watched := b.watch[p.PublicKey]
		if !watched {
			continue
		}
		w, ok := b.wants[p.PublicKey]
		switch {
		case !ok || !p.LastHandshakeTime.IsZero() || now.Sub(since) > b.opts.RetryFor:
			delete(b.watch, p.PublicKey)
			continue
		case p.ReceiveBytes > 0:
			continue // the peer answered; the handshake is completing
		}
		// No session exists, so removing the peer loses nothing; its
		// allowed IPs come back in the same call.
		ka := w.keepalive
		peers = append(peers,
			wgtypes.PeerConfig{PublicKey: w.key, Remove: true},
			wgtypes.PeerConfig{PublicKey: w.key, Endpoint: net.UDPAddrFromAddrPort(w.endpoint),
				PersistentKeepaliveInterval: &ka, AllowedIPs: ipNets(w.allowed)})
	}
	if len(peers) > 0 {
		if err := b.wg.ConfigureDevice(b.iface, wgtypes.Config{Peers: peers}); err != nil {
			b.log.Warn("wgmesh re-create silent peers", "interface", b.iface, "error", err)
		} else {
			b.log.Debug("wgmesh re-created silent peers", "interface", b.iface, "peers", len(peers)/2)
		}
	}
	b.armRetryLocked()
}
