package target

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// pendingKey is the store meta key of the pending commit-confirmed.
const pendingKey = "gnmi/commit-confirmed"

// DefaultRollback is the rollback duration when a commit names none
// (openconfig/reference gnmi-commit-confirmed.md).
const DefaultRollback = 600 * time.Second

// pending is a commit awaiting confirmation, as persisted: its inverse is
// stored in the same durable write as the commit itself, so a kill -9
// inside the window still rolls back after restart.
type pending struct {
	ID       string `json:"id"`
	Deadline int64  `json:"deadline_unix_ns"`
	Undo     []byte `json:"undo"` // a marshalled gnmi.SetRequest
	// Paths the commit wrote, for authorising confirm and cancel.
	Paths []string `json:"paths"`
}

// confirmer owns the commit-confirmed state machine: at most one pending
// commit; while it is pending every other Set fails with
// FailedPrecondition.
type confirmer struct {
	mu    sync.Mutex
	st    *store.Store
	log   *slog.Logger
	now   func() time.Time
	cur   *pending
	timer *time.Timer
}

func newConfirmer(st *store.Store, log *slog.Logger) (*confirmer, error) {
	c := &confirmer{st: st, log: log, now: time.Now}
	blob, err := st.GetMeta(pendingKey)
	if err != nil {
		return nil, err
	}
	if len(blob) == 0 {
		return c, nil
	}
	var p pending
	if err := json.Unmarshal(blob, &p); err != nil {
		return nil, fmt.Errorf("load pending commit: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = &p
	left := time.Until(time.Unix(0, p.Deadline))
	log.Warn("commit-confirmed pending from before restart", "id", p.ID, "rollback_in", left)
	if left <= 0 {
		if err := c.rollbackLocked(context.Background(), "deadline passed while down"); err != nil {
			return nil, err
		}
		return c, nil
	}
	c.arm(p.ID, left)
	return c, nil
}

// commitExt returns the request's commit-confirmed extension, if any.
func commitExt(req *gpb.SetRequest) (*gnmi_ext.Commit, error) {
	for _, x := range req.GetExtension() {
		if cm := x.GetCommit(); cm != nil {
			if cm.GetId() == "" {
				return nil, status.Error(codes.InvalidArgument, "commit extension without an id")
			}
			return cm, nil
		}
	}
	return nil, nil
}

func (c *confirmer) plainSet(ctx context.Context, ops []store.Op, check store.Check) (*store.Commit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		return nil, c.busy()
	}
	return c.st.CommitWith(ctx, ops, store.CommitOptions{Check: check})
}

func (c *confirmer) busy() error {
	return status.Errorf(codes.FailedPrecondition, "commit %q is awaiting confirmation until %s; confirm or cancel it first",
		c.cur.ID, time.Unix(0, c.cur.Deadline).UTC().Format(time.RFC3339))
}

func (c *confirmer) handle(ctx context.Context, cm *gnmi_ext.Commit, ops []store.Op, check store.Check) (*store.Commit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if req := cm.GetCommit(); req != nil {
		if c.cur != nil {
			return nil, c.busy()
		}
		d := DefaultRollback
		if rd := req.GetRollbackDuration(); rd != nil {
			d = rd.AsDuration()
			if d <= 0 {
				return nil, status.Error(codes.InvalidArgument, "rollback duration must be positive")
			}
		}
		p := &pending{ID: cm.GetId(), Deadline: c.now().Add(d).UnixNano()}
		for _, op := range ops {
			p.Paths = append(p.Paths, pathString(op.Path))
		}
		commit, err := c.st.CommitWith(ctx, ops, store.CommitOptions{Check: check, UndoKey: pendingKey,
			Undo: func(undo []store.Op) ([]byte, error) {
				b, err := marshalOps(undo)
				if err != nil {
					return nil, err
				}
				p.Undo = b
				return json.Marshal(p)
			}})
		if err != nil {
			return nil, err
		}
		c.cur = p
		c.arm(p.ID, d)
		c.log.Info("commit awaiting confirmation", "id", p.ID, "rollback_in", d)
		return commit, nil
	}
	if c.cur == nil {
		return nil, status.Error(codes.FailedPrecondition, "no commit is awaiting confirmation")
	}
	if cm.GetId() != c.cur.ID {
		return nil, status.Errorf(codes.InvalidArgument, "commit id %q does not match the pending commit", cm.GetId())
	}
	if len(ops) > 0 {
		return nil, status.Error(codes.InvalidArgument, "confirm, cancel and set_rollback_duration take no operations")
	}
	switch {
	case cm.GetConfirm() != nil:
		if err := c.st.PutMeta(pendingKey, nil); err != nil {
			return nil, err
		}
		c.log.Info("commit confirmed", "id", c.cur.ID)
		c.disarm()
		c.cur = nil
	case cm.GetCancel() != nil:
		if err := c.rollbackLocked(ctx, "cancelled"); err != nil {
			return nil, err
		}
	case cm.GetSetRollbackDuration() != nil:
		d := cm.GetSetRollbackDuration().GetRollbackDuration().AsDuration()
		if d <= 0 {
			return nil, status.Error(codes.InvalidArgument, "rollback duration must be positive")
		}
		p := *c.cur
		p.Deadline = c.now().Add(d).UnixNano()
		b, err := json.Marshal(&p)
		if err != nil {
			return nil, err
		}
		if err := c.st.PutMeta(pendingKey, b); err != nil {
			return nil, err
		}
		c.cur = &p
		c.arm(p.ID, d)
	default:
		return nil, status.Error(codes.InvalidArgument, "commit extension without an action")
	}
	return &store.Commit{Seq: c.st.Seq(), Time: c.now()}, nil
}

// arm (re)starts the rollback timer for commit id.
func (c *confirmer) arm(id string, d time.Duration) {
	c.disarm()
	c.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cur == nil || c.cur.ID != id || c.now().UnixNano() < c.cur.Deadline {
			return // confirmed, cancelled or re-armed meanwhile
		}
		if err := c.rollbackLocked(context.Background(), "not confirmed in time"); err != nil {
			c.log.Error("roll back unconfirmed commit", "id", id, "err", err)
		}
	})
}

func (c *confirmer) disarm() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// rollbackLocked applies the pending commit's inverse and clears it, in
// one durable write.
func (c *confirmer) rollbackLocked(ctx context.Context, why string) error {
	ops, err := unmarshalOps(c.cur.Undo)
	if err != nil {
		return fmt.Errorf("roll back commit %s: %w", c.cur.ID, err)
	}
	if _, err := c.st.CommitUndoable(ctx, ops, pendingKey, func([]store.Op) ([]byte, error) { return nil, nil }); err != nil {
		return fmt.Errorf("roll back commit %s: %w", c.cur.ID, err)
	}
	c.log.Warn("commit rolled back", "id", c.cur.ID, "why", why)
	c.disarm()
	c.cur = nil
	return nil
}

func (c *confirmer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disarm()
}

func marshalOps(ops []store.Op) ([]byte, error) {
	req := &gpb.SetRequest{}
	for _, op := range ops {
		p := &gpb.Path{Elem: op.Path}
		if op.Kind == store.OpDelete {
			req.Delete = append(req.Delete, p)
			continue
		}
		req.Update = append(req.Update, &gpb.Update{Path: p, Val: op.Val})
	}
	return proto.Marshal(req)
}

func unmarshalOps(b []byte) ([]store.Op, error) {
	req := &gpb.SetRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, err
	}
	var ops []store.Op
	for _, p := range req.GetDelete() {
		ops = append(ops, store.Op{Kind: store.OpDelete, Path: p.GetElem()})
	}
	for _, u := range req.GetUpdate() {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: u.GetPath().GetElem(), Val: u.GetVal()})
	}
	return ops, nil
}

// pendingPaths returns the paths the pending commit wrote, if any.
func (c *confirmer) pendingPaths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return nil
	}
	return append([]string(nil), c.cur.Paths...)
}
