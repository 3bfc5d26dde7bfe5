package mesh

import (
	"context"
	"fmt"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Mesh and peer statuses (the enums of kedge-mesh). Of the peer ones,
// drained means this node's own posture level withholds the peer (it was
// sent a DRAIN and removed), posture-down that the peer announced its own
// posture teardown with a DRAIN and is not reconnected until the peer's
// reconnect leaf changes.
const (
	meshUp           = kedgepath.MeshStatusUp
	meshStatusDown   = kedgepath.MeshStatusDown
	meshIsolated     = kedgepath.MeshStatusIsolated
	meshUnconfigured = kedgepath.MeshStatusUnconfigured
	meshUnavailable  = kedgepath.MeshStatusUnavailable

	peerPending     = kedgepath.PeerStatusPending
	peerUp          = kedgepath.PeerStatusUp
	peerStale       = kedgepath.PeerStatusStale
	peerDrained     = kedgepath.PeerStatusDrained
	peerPostureDown = kedgepath.PeerStatusPostureDown
	peerFailed      = kedgepath.PeerStatusFailed
)

// meshLeaf is a state leaf as last committed.
type meshLeaf struct {
	text string // the value's text form, for change detection
	peer string // the peer entry holding it; "" for /kedge/mesh/state
	path []*gpb.PathElem
	val  *gpb.TypedValue
}

// stateLeaf is the meshLeaf writing v at p.
func stateLeaf[P store.Leaf[T], T any](p P, v T) meshLeaf {
	return meshLeaf{text: fmt.Sprint(v), path: p.Elems(), val: p.Val(v)}
}

// refreshLoop re-reads the device every refresh period and writes what
// changed (handshakes, counters, derived status), so state follows a peer
// that goes stale or comes up without any tree change.
func (a *meshApplier) refreshLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		if a.host != nil && a.kick != nil {
			select {
			case <-a.host.Done():
				a.kick() // the device died under us: Set hosts it again
			default:
			}
		}
		if a.haveSet && a.last.configured {
			var stp *wgmesh.Status
			if st, err := a.backend.Status(); err == nil {
				stp = &st
			}
			a.writeStateLocked(ctx, stp)
		}
		a.mu.Unlock()
	}
}

// writeStateLocked commits, in one state commit, the mesh and peer state
// leaves that differ from the last commit. st is nil when the device
// could not be read. Callers hold a.mu.
func (a *meshApplier) writeStateLocked(ctx context.Context, st *wgmesh.Status) {
	a.writeLeavesLocked(ctx, a.wantState(st))
}

// writeLeavesLocked commits the difference between want and what was
// last written. Callers hold a.mu.
func (a *meshApplier) writeLeavesLocked(ctx context.Context, want map[string]meshLeaf) {
	var ops []store.Op
	next := make(map[string]meshLeaf, len(want))
	for k, l := range want {
		next[k] = l
		if old, ok := a.written[k]; ok && old.text == l.text {
			continue
		}
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: l.path, Val: l.val})
	}
	configured := map[string]bool{}
	for _, p := range a.last.peers {
		configured[p.Name] = true
	}
	for k, l := range a.written {
		if _, ok := want[k]; ok {
			continue
		}
		// A peer deleted from config took its state with it.
		if l.peer == "" || configured[l.peer] {
			ops = append(ops, store.Op{Kind: store.OpDelete, Path: l.path})
		}
	}
	if len(ops) == 0 {
		return
	}
	if _, err := a.st.CommitState(ctx, ops); err != nil {
		// A peer deleted since the intent was read fails the whole
		// commit; its deletion triggers a Set that writes everything.
		a.log.Debug("write mesh state", "err", err)
		a.written = nil
		return
	}
	a.written = next
}

// wantState is the state the tree should hold now.
func (a *meshApplier) wantState(st *wgmesh.Status) map[string]meshLeaf {
	out := map[string]meshLeaf{}
	put := func(peer string, l meshLeaf) {
		l.peer = peer
		out[tree.RenderPath(l.path)] = l
	}
	ms := kedgepath.Root().Kedge().Mesh().State()
	if !a.last.configured {
		for _, l := range idleState(a.pub, a.last.cfg, meshUnconfigured, "") {
			put("", l)
		}
		return out
	}
	put("", stateLeaf(ms.PublicKey(), a.pub.String()))
	status, errText := meshUp, ""
	switch {
	case !a.haveSet:
		status, errText = meshStatusDown, "not applied yet: the mesh starts once the posture engine has converged"
	case a.hostErr != nil:
		status, errText = meshStatusDown, a.hostErr.Error()
	case a.setErr != nil:
		status, errText = meshStatusDown, a.setErr.Error()
	case st == nil:
		status, errText = meshStatusDown, "mesh device not readable"
	case a.last.isolated:
		status = meshIsolated
	}
	put("", stateLeaf(ms.Status(), status))
	if errText != "" {
		put("", stateLeaf(ms.Error(), errText))
	}
	byName := map[string]wgmesh.PeerStatus{}
	if st != nil {
		put("", stateLeaf(ms.Interface(), st.Interface))
		if st.ListenPort != 0 {
			put("", stateLeaf(ms.ListenPort(), uint16(st.ListenPort)))
		}
		for _, p := range st.Peers {
			byName[p.Name] = p
		}
	} else {
		// No device to read: the interface and port it is to have.
		put("", stateLeaf(ms.Interface(), a.last.cfg.Interface))
		put("", stateLeaf(ms.ListenPort(), uint16(a.last.cfg.ListenPort)))
	}
	now := a.clock.Now()
	for _, p := range a.last.peers {
		ps := kedgepath.Root().Kedge().Mesh().Peers().Peer(p.Name).State()
		put(p.Name, stateLeaf(ps.PublicKey(), p.PublicKey))
		dev, onDev := byName[p.Name]
		var status kedgepath.PeerStatus
		var errText string
		down := a.postureDown(p.Name)
		switch {
		case down:
			status = peerPostureDown
		case !a.last.kept(p.Name):
			status = peerDrained
		case !a.haveSet:
			status = peerPending // the first Set has not run yet
		case st == nil:
			status, errText = peerFailed, "mesh device: "+orText(a.setErr, a.hostErr)
		case onDev && dev.Err != nil:
			status, errText = peerFailed, dev.Err.Error()
		case onDev && !dev.LastHandshake.IsZero():
			status = peerUp
			if now.Sub(dev.LastHandshake) > a.last.staleAfter {
				status = peerStale
			}
		case onDev:
			status = kedgepath.PeerStatus(dev.State) // pending, or failed after FailAfter
		default:
			status = peerPending
		}
		put(p.Name, stateLeaf(ps.Status(), status))
		if errText != "" {
			put(p.Name, stateLeaf(ps.Error(), errText))
		}
		if onDev && dev.Err == nil {
			var hs uint64
			if !dev.LastHandshake.IsZero() {
				hs = uint64(dev.LastHandshake.UnixNano())
			}
			put(p.Name, stateLeaf(ps.LastHandshake(), hs))
			put(p.Name, stateLeaf(ps.RxBytes(), uint64(dev.RxBytes)))
			put(p.Name, stateLeaf(ps.TxBytes(), uint64(dev.TxBytes)))
		}
	}
	return out
}

// idleState is the mesh state of a node without a device: its public
// key (none when zero), the interface and listen port cfg would give the
// device, the status and, when not empty, why.
func idleState(pub wgmesh.Key, cfg wgmesh.Config, status kedgepath.MeshStatus, why string) []meshLeaf {
	ms := kedgepath.Root().Kedge().Mesh().State()
	var out []meshLeaf
	if pub != (wgmesh.Key{}) {
		out = append(out, stateLeaf(ms.PublicKey(), pub.String()))
	}
	out = append(out,
		stateLeaf(ms.Interface(), cfg.Interface),
		stateLeaf(ms.ListenPort(), uint16(cfg.ListenPort)),
		stateLeaf(ms.Status(), status))
	if why != "" {
		out = append(out, stateLeaf(ms.Error(), why))
	}
	return out
}

// publishInitial writes the mesh state the tree implies before the first
// Set (which waits for the posture engine): a node without a mesh shows
// it is unconfigured, one with a mesh that it is not applied yet.
func (a *meshApplier) publishInitial(ctx context.Context) {
	var mi meshIntent
	if err := a.st.Read(func(t *tree.Tree) error {
		var err error
		mi, err = a.intent(t, accord.Current(t))
		return err
	}); err != nil {
		a.log.Warn("read mesh config", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.haveSet {
		return // a Set has written the state already
	}
	a.last = mi
	a.writeStateLocked(ctx, nil)
}

func orText(errs ...error) string {
	for _, e := range errs {
		if e != nil {
			return e.Error()
		}
	}
	return "not readable"
}
