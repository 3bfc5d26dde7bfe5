package shellstream

import (
	"context"
	"fmt"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// StateCommitter commits state (*store.Store).
type StateCommitter interface {
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// TreeState writes sessions into /kedge/sessions through the store. It is
// the only place this package names tree nodes, all through the
// generated path structs.
type TreeState struct {
	st     StateCommitter
	leaves map[string][]*gpb.PathElem // leaf name -> path with a placeholder id
	entry  []*gpb.PathElem
}

const placeholderID = "\x00id"

// NewTreeState returns a StateWriter over st.
func NewTreeState(st StateCommitter) (*TreeState, error) {
	sess := kedgepath.DeviceRoot("").Kedge().Sessions().Session(placeholderID)
	s := sess.State()
	named := map[string]ygot.PathStruct{
		"id": s.Id(), "peer": s.Peer(), "node": s.Node(), "cluster": s.Cluster(), "local": s.Local(), "tier": s.Tier(),
		"type": s.Type(), "critical": s.Critical(), "capabilities": s.Capabilities(), "verification": s.Verification(),
		"initiator-posture": s.InitiatorPosture(), "posture-at-handshake": s.PostureAtHandshake(),
		"effective-posture": s.EffectivePosture(), "status": s.Status(), "started": s.Started(),
		"drain-deadline": s.DrainDeadline(), "closed": s.Closed(), "close-reason": s.CloseReason(),
		"bytes-in": s.BytesIn(), "bytes-out": s.BytesOut(), "frames-in": s.FramesIn(), "frames-out": s.FramesOut(),
	}
	t := &TreeState{st: st, leaves: map[string][]*gpb.PathElem{}}
	for name, ps := range named {
		p, _, errs := ygot.ResolvePath(ps)
		if len(errs) > 0 {
			return nil, fmt.Errorf("resolve session state path %s: %v", name, errs)
		}
		t.leaves[name] = p.GetElem()
	}
	p, _, errs := ygot.ResolvePath(sess)
	if len(errs) > 0 {
		return nil, fmt.Errorf("resolve session path: %v", errs)
	}
	t.entry = p.GetElem()
	return t, nil
}

// path returns the template's elements with the session id filled in.
func withID(tmpl []*gpb.PathElem, id string) []*gpb.PathElem {
	out := make([]*gpb.PathElem, len(tmpl))
	for i, e := range tmpl {
		if e.Key["id"] == placeholderID {
			out[i] = &gpb.PathElem{Name: e.Name, Key: map[string]string{"id": id}}
			continue
		}
		out[i] = e
	}
	return out
}

// WriteSessions commits put and del in one state commit.
func (t *TreeState) WriteSessions(ctx context.Context, put []State, del []string) error {
	ops := make([]store.Op, 0, len(put)*22+len(del))
	for _, s := range put {
		set := func(leaf string, v tree.Value) {
			ops = append(ops, store.Op{Kind: store.OpUpdate, Path: withID(t.leaves[leaf], s.ID), Val: tree.Typed(v)})
		}
		opt := func(leaf string, v tree.Value, present bool) {
			if present {
				set(leaf, v)
				return
			}
			ops = append(ops, store.Op{Kind: store.OpDelete, Path: withID(t.leaves[leaf], s.ID)})
		}
		set("id", tree.String(s.ID))
		set("peer", tree.String(s.Peer))
		opt("node", tree.String(s.Node), s.Node != "")
		opt("cluster", tree.String(s.Cluster), s.Cluster != "")
		set("local", tree.Bool(s.Local))
		set("tier", tree.String(s.Tier))
		set("type", tree.String(s.Type))
		set("critical", tree.Bool(s.Critical))
		caps := make([]tree.Value, len(s.Capabilities))
		for i, c := range s.Capabilities {
			caps[i] = tree.String(c)
		}
		opt("capabilities", tree.ListValue(caps), len(caps) > 0)
		set("verification", tree.String(s.Verification))
		set("initiator-posture", tree.Uint(uint64(s.InitiatorPosture)))
		set("posture-at-handshake", tree.Uint(uint64(s.PostureAtHandshake)))
		set("effective-posture", tree.Uint(uint64(s.EffectivePosture)))
		set("status", tree.String(s.Status))
		set("started", tree.Uint(ns(s.Started)))
		opt("drain-deadline", tree.Uint(ns(s.DrainDeadline)), !s.DrainDeadline.IsZero())
		opt("closed", tree.Uint(ns(s.Closed)), !s.Closed.IsZero())
		opt("close-reason", tree.String(s.CloseReason), s.CloseReason != "")
		set("bytes-in", tree.Uint(s.BytesIn))
		set("bytes-out", tree.Uint(s.BytesOut))
		set("frames-in", tree.Uint(s.FramesIn))
		set("frames-out", tree.Uint(s.FramesOut))
	}
	for _, id := range del {
		ops = append(ops, store.Op{Kind: store.OpDelete, Path: withID(t.entry, id)})
	}
	if _, err := t.st.CommitState(ctx, ops); err != nil {
		return fmt.Errorf("write sessions: %w", err)
	}
	return nil
}

func ns(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}
