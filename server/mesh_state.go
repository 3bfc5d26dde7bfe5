package server

import (
	"context"
	"fmt"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Mesh and peer statuses (the enums of kedge-mesh). Of the peer ones,
// drained means this node's own posture level withholds the peer (it was
// sent a DRAIN and removed), posture-down that the peer announced its own
// posture teardown with a DRAIN and is not reconnected until the peer's
// reconnect leaf changes.
const (
	meshUp         = "up"
	meshStatusDown = "down"
	meshIsolated   = "isolated"

	peerPending     = "pending"
	peerUp          = "up"
	peerStale       = "stale"
	peerDrained     = "drained"
	peerPostureDown = "posture-down"
	peerFailed      = "failed"
)

// meshLeaf is a state leaf as last committed.
type meshLeaf struct {
	val  string // the value's text form, for change detection
	peer string // the peer entry holding it; "" for /kedge/mesh/state
	path []*gpb.PathElem
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
		if old, ok := a.written[k]; ok && old.val == l.val {
			continue
		}
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: l.path, Val: l.valProto()})
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
	put := func(peer, leaf string, v any) {
		p := meshStatePath(peer, leaf)
		out[tree.RenderPath(p)] = meshLeaf{val: fmt.Sprint(v), peer: peer, path: p}
	}
	put("", "public-key", a.pub.String())
	status, errText := meshUp, ""
	switch {
	case a.hostErr != nil:
		status, errText = meshStatusDown, a.hostErr.Error()
	case a.setErr != nil:
		status, errText = meshStatusDown, a.setErr.Error()
	case st == nil:
		status, errText = meshStatusDown, "mesh device not readable"
	case a.last.isolated:
		status = meshIsolated
	}
	put("", "status", status)
	if errText != "" {
		put("", "error", errText)
	}
	byName := map[string]wgmesh.PeerStatus{}
	if st != nil {
		put("", "interface", st.Interface)
		if st.ListenPort != 0 {
			put("", "listen-port", uint64(st.ListenPort))
		}
		for _, p := range st.Peers {
			byName[p.Name] = p
		}
	}
	now := time.Now()
	for _, p := range a.last.peers {
		put(p.Name, "public-key", p.PublicKey)
		ps, onDev := byName[p.Name]
		var status, errText string
		down := a.postureDown(p.Name)
		switch {
		case down:
			status = peerPostureDown
		case !a.last.kept(p.Name):
			status = peerDrained
		case st == nil:
			status, errText = peerFailed, "mesh device: "+orText(a.setErr, a.hostErr)
		case onDev && ps.Err != nil:
			status, errText = peerFailed, ps.Err.Error()
		case onDev && !ps.LastHandshake.IsZero():
			status = peerUp
			if now.Sub(ps.LastHandshake) > a.last.staleAfter {
				status = peerStale
			}
		case onDev:
			status = string(ps.State) // pending, or failed after FailAfter
		default:
			status = peerPending
		}
		put(p.Name, "status", status)
		if errText != "" {
			put(p.Name, "error", errText)
		}
		if onDev && ps.Err == nil {
			var hs uint64
			if !ps.LastHandshake.IsZero() {
				hs = uint64(ps.LastHandshake.UnixNano())
			}
			put(p.Name, "last-handshake", hs)
			put(p.Name, "rx-bytes", uint64(ps.RxBytes))
			put(p.Name, "tx-bytes", uint64(ps.TxBytes))
		}
	}
	return out
}

func orText(errs ...error) string {
	for _, e := range errs {
		if e != nil {
			return e.Error()
		}
	}
	return "not readable"
}

// meshStatePath is /kedge/mesh/state/LEAF, or with a peer
// /kedge/mesh/peers/peer[name=PEER]/state/LEAF.
func meshStatePath(peer, leaf string) []*gpb.PathElem {
	if peer == "" {
		return []*gpb.PathElem{{Name: "kedge"}, {Name: "mesh"}, {Name: "state"}, {Name: leaf}}
	}
	return []*gpb.PathElem{{Name: "kedge"}, {Name: "mesh"}, {Name: "peers"},
		{Name: "peer", Key: map[string]string{"name": peer}}, {Name: "state"}, {Name: leaf}}
}

// valProto is the leaf's gNMI value: counters and times are uint64, the
// rest strings.
func (l meshLeaf) valProto() *gpb.TypedValue {
	switch l.path[len(l.path)-1].GetName() {
	case "listen-port", "last-handshake", "rx-bytes", "tx-bytes":
		var n uint64
		fmt.Sscan(l.val, &n)
		return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
	}
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: l.val}}
}
