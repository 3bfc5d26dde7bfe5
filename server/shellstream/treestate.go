package shellstream

import (
	"context"
	"fmt"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
)

// StateCommitter commits state (*store.Store).
type StateCommitter interface {
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// TreeState writes sessions into /kedge/sessions through the store. It is
// the only place this package names tree nodes, all through the
// generated typed paths (gen/kedgepath).
type TreeState struct {
	st StateCommitter
}

// NewTreeState returns a StateWriter over st.
func NewTreeState(st StateCommitter) (*TreeState, error) {
	return &TreeState{st: st}, nil
}

// WriteSessions commits put and del in one state commit.
func (t *TreeState) WriteSessions(ctx context.Context, put []State, del []string) error {
	sessions := kedgepath.Root().Kedge().Sessions()
	ops := make([]store.Op, 0, len(put)*22+len(del))
	for _, s := range put {
		st := sessions.Session(s.ID).State()
		ops = append(ops,
			store.Update(st.Id(), s.ID),
			store.Update(st.Peer(), s.Peer),
			store.Update(st.Local(), s.Local),
			store.Update(st.Tier(), kedgepath.Tier(s.Tier)),
			store.Update(st.Type(), kedgepath.SessionType(s.Type)),
			store.Update(st.Critical(), s.Critical),
			store.Update(st.Verification(), kedgepath.SessionVerification(s.Verification)),
			store.Update(st.InitiatorPosture(), s.InitiatorPosture),
			store.Update(st.PostureAtHandshake(), s.PostureAtHandshake),
			store.Update(st.EffectivePosture(), s.EffectivePosture),
			store.Update(st.Status(), kedgepath.SessionStatus(s.Status)),
			store.Update(st.Started(), ns(s.Started)),
			store.Update(st.BytesIn(), s.BytesIn),
			store.Update(st.BytesOut(), s.BytesOut),
			store.Update(st.FramesIn(), s.FramesIn),
			store.Update(st.FramesOut(), s.FramesOut),
		)
		ops = optional(ops, st.Node(), s.Node, s.Node != "")
		ops = optional(ops, st.Cluster(), s.Cluster, s.Cluster != "")
		caps := make([]kedgepath.SessionCapabilities, len(s.Capabilities))
		for i, c := range s.Capabilities {
			caps[i] = kedgepath.SessionCapabilities(c)
		}
		ops = optional(ops, st.Capabilities(), caps, len(caps) > 0)
		ops = optional(ops, st.DrainDeadline(), ns(s.DrainDeadline), !s.DrainDeadline.IsZero())
		ops = optional(ops, st.Closed(), ns(s.Closed), !s.Closed.IsZero())
		ops = optional(ops, st.CloseReason(), s.CloseReason, s.CloseReason != "")
	}
	for _, id := range del {
		ops = append(ops, store.Delete(sessions.Session(id)))
	}
	if _, err := t.st.CommitState(ctx, ops); err != nil {
		return fmt.Errorf("write sessions: %w", err)
	}
	return nil
}

// optional sets leaf p to v when present, and deletes it otherwise (a
// leaf the session no longer has, such as a cleared drain deadline).
func optional[P store.Leaf[T], T any](ops []store.Op, p P, v T, present bool) []store.Op {
	if present {
		return append(ops, store.Update(p, v))
	}
	return append(ops, store.Delete(p))
}

func ns(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}
