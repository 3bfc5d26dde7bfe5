// Package wgmeshtest is a recording fake of a wgmesh.Backend for tests of the
// posture engine and reconcilers: it keeps every Config it is given and
// reports status from the last one, with per-peer states a test can script.
package wgmeshtest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
)

// Fake records Sets. The zero value is not usable; call New.
type Fake struct {
	mu     sync.Mutex
	calls  []wgmesh.Config
	states map[string]wgmesh.PeerState
	// SetErr, if set, is returned by Set (after recording the call).
	setErr func(wgmesh.Config) error
}

// New returns an empty fake.
func New() *Fake { return &Fake{states: map[string]wgmesh.PeerState{}} }

// FailWith makes Set record the call and return fn(cfg).
func (f *Fake) FailWith(fn func(wgmesh.Config) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setErr = fn
}

// Set records a deep copy of cfg.
func (f *Fake) Set(ctx context.Context, cfg wgmesh.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, clone(cfg))
	if f.setErr != nil {
		return f.setErr(cfg)
	}
	return nil
}

// Calls returns copies of every Config set so far, oldest first.
func (f *Fake) Calls() []wgmesh.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]wgmesh.Config, len(f.calls))
	for i, c := range f.calls {
		out[i] = clone(c)
	}
	return out
}

// Last returns the last Config set.
func (f *Fake) Last() (wgmesh.Config, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return wgmesh.Config{}, false
	}
	return clone(f.calls[len(f.calls)-1]), true
}

// SetPeerState scripts the state Status reports for a peer; unscripted
// configured peers are up.
func (f *Fake) SetPeerState(name string, s wgmesh.PeerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[name] = s
}

// Status reports the peers of the last Config.
func (f *Fake) Status() (wgmesh.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return wgmesh.Status{}, errors.New("read status: no Set yet")
	}
	last := f.calls[len(f.calls)-1]
	iface := last.Interface
	if iface == "" {
		iface = wgmesh.DefaultInterface
	}
	st := wgmesh.Status{Interface: iface, PublicKey: last.PrivateKey.PublicKey().String(), ListenPort: last.ListenPort}
	for _, p := range last.Peers {
		s, ok := f.states[p.Name]
		if !ok {
			s = wgmesh.StateUp
		}
		st.Peers = append(st.Peers, wgmesh.PeerStatus{Name: p.Name, PublicKey: p.PublicKey, State: s})
	}
	slices.SortFunc(st.Peers, func(a, b wgmesh.PeerStatus) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// Peers is Status().Peers.
func (f *Fake) Peers() ([]wgmesh.PeerStatus, error) {
	st, err := f.Status()
	return st.Peers, err
}

func clone(c wgmesh.Config) wgmesh.Config {
	c.Addresses = slices.Clone(c.Addresses)
	c.Peers = slices.Clone(c.Peers)
	for i := range c.Peers {
		c.Peers[i].AllowedIPs = slices.Clone(c.Peers[i].AllowedIPs)
	}
	return c
}

// PeerForAddr names the peer of the last Config whose allowed IPs contain
// addr, longest prefix first, as the real backend does.
func (f *Fake) PeerForAddr(addr netip.Addr) (string, bool) {
	cfg, ok := f.Last()
	if !ok {
		return "", false
	}
	best, bits := "", -1
	for _, p := range cfg.Peers {
		for _, pfx := range p.AllowedIPs {
			if pfx.Contains(addr) && pfx.Bits() > bits {
				best, bits = p.Name, pfx.Bits()
			}
		}
	}
	return best, bits >= 0
}

// Close does nothing: the fake's "device" stays, as a real one does.
func (f *Fake) Close() error { return nil }
