package target

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// pendingKey is the store meta key of the pending commit-confirmed.
const pendingKey = "gnmi/commit-confirmed"

// DefaultRollback is the rollback duration when a commit names none
// (openconfig/reference gnmi-commit-confirmed.md).
const DefaultRollback = 600 * time.Second

// MaxRollback is the longest rollback duration accepted, for a commit or
// set_rollback_duration; longer is INVALID_ARGUMENT. While a commit is
// pending every other Set waits, so the window is kept to what checking
// a change needs; a tier at or above the committer's can end it sooner.
const MaxRollback = time.Hour

// pending is a commit awaiting confirmation, as persisted: its inverse is
// stored in the same durable write as the commit itself, so a kill -9
// inside the window still rolls back after restart.
type pending struct {
	ID       string `json:"id"`
	Deadline int64  `json:"deadline_unix_ns"`
	Undo     []byte `json:"undo"` // a marshalled gnmi.SetRequest
	// Paths the commit wrote, for authorising confirm and cancel.
	Paths []string `json:"paths"`
	// Owner is the Authorizer's name for who made the commit
	// (Authorizer.Principal); confirm and cancel ask it again with this.
	Owner string `json:"owner,omitempty"`
}

// caller is what the confirmer needs from a Set's caller.
type caller struct {
	// check authorizes a commit's changes (Authorizer.WriteChanges).
	check store.CommitCheck
	// owner names the caller for a commit it leaves pending.
	owner string
	// resolve authorizes confirming or cancelling the pending commit
	// (Authorizer.ResolvePending).
	resolve func(owner string, paths []string) error
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
	now := c.now()
	left := time.Unix(0, p.Deadline).Sub(now)
	if p.Deadline <= 0 || left > MaxRollback {
		// An older version stored deadlines that had overflowed (a
		// 9,223,372,036 s duration became a negative time); the real
		// deadline is lost. Rolling back at once would undo a commit
		// its author still has time to confirm, so it gets the longest
		// window there is, written back so restarts do not extend it.
		log.Warn("pending commit-confirmed has an impossible deadline; it rolls back in the longest window instead",
			"id", p.ID, "deadline_unix_ns", p.Deadline, "rollback_in", MaxRollback)
		left = MaxRollback
		p.Deadline = deadlineNS(now, left)
		b, err := json.Marshal(&p)
		if err != nil {
			return nil, fmt.Errorf("store pending commit: %w", err)
		}
		if err := st.PutMeta(pendingKey, b); err != nil {
			return nil, err
		}
	}
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

// deadlineNS is now+d in Unix nanoseconds, saturating instead of
// overflowing (UnixNano is undefined past the year 2262).
func deadlineNS(now time.Time, d time.Duration) int64 {
	n := now.UnixNano()
	if d > 0 && n > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return n + int64(d)
}

// rollbackDuration checks a requested rollback duration.
func rollbackDuration(d *durationpb.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "rollback duration: %v", err)
	}
	sec := d.GetSeconds()
	if sec < 0 || (sec == 0 && d.GetNanos() <= 0) {
		return 0, status.Error(codes.InvalidArgument, "rollback duration must be positive")
	}
	if sec > int64(MaxRollback/time.Second) || d.AsDuration() > MaxRollback {
		return 0, status.Errorf(codes.InvalidArgument, "rollback duration %v is longer than the maximum, %v", d.AsDuration(), MaxRollback)
	}
	return d.AsDuration(), nil
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

func (c *confirmer) plainSet(ctx context.Context, ops []store.Op, check store.CommitCheck) (*store.Commit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		return nil, c.busy()
	}
	return c.st.CommitWith(ctx, ops, store.CommitOptions{Check: check})
}

func (c *confirmer) busy() error {
	by := ""
	if c.cur.Owner != "" {
		by = " by " + c.cur.Owner
	}
	return status.Errorf(codes.FailedPrecondition, "commit %q%s is awaiting confirmation until %s; confirm or cancel it first "+
		"(its author or a higher tier with write rights over what it changed may)",
		c.cur.ID, by, time.Unix(0, c.cur.Deadline).UTC().Format(time.RFC3339))
}

func (c *confirmer) handle(ctx context.Context, cm *gnmi_ext.Commit, ops []store.Op, who caller) (*store.Commit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if req := cm.GetCommit(); req != nil {
		if c.cur != nil {
			return nil, c.busy()
		}
		d := DefaultRollback
		if rd := req.GetRollbackDuration(); rd != nil {
			var err error
			if d, err = rollbackDuration(rd); err != nil {
				return nil, err
			}
		}
		p := &pending{ID: cm.GetId(), Deadline: deadlineNS(c.now(), d), Owner: who.owner}
		for _, op := range ops {
			p.Paths = append(p.Paths, pathString(op.Path))
		}
		commit, err := c.st.CommitWith(ctx, ops, store.CommitOptions{Check: who.check, UndoKey: pendingKey,
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
	if err := who.resolve(c.cur.Owner, c.cur.Paths); err != nil {
		return nil, err
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
		d, err := rollbackDuration(cm.GetSetRollbackDuration().GetRollbackDuration())
		if err != nil {
			return nil, err
		}
		p := *c.cur
		p.Deadline = deadlineNS(c.now(), d)
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
