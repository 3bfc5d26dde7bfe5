package underlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/oc"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// Push outcomes (leaf result/state/status), plus aborted: the push was
// stopped by a posture change before it changed anything that stays.
const (
	resPending     = string(kedgepath.ResultStatusPending)
	resUnchanged   = string(kedgepath.ResultStatusUnchanged)
	resConfirmed   = string(kedgepath.ResultStatusConfirmed)
	resRolledBack  = string(kedgepath.ResultStatusRolledBack)
	resRejected    = string(kedgepath.ResultStatusRejected)
	resUnreachable = string(kedgepath.ResultStatusUnreachable)
	resAborted     = "aborted" // not a state value: shown as pending
)

// pushJob asks a device manager to make the device hold target.
type pushJob struct {
	ctx      context.Context // cancelled to abort (a posture change)
	id       string          // commit id on the device
	target   *oc.Device
	scope    *oc.Device // the previous target: what Kedge owned before
	mutation string     // "" for a drift repair
	repair   uint64     // a drift repair's number
	rollback time.Duration
}

// pushResult is what a push did.
type pushResult struct {
	status string
	err    error
	ops    []mu.Op     // the Set that was sent (nil when none)
	before mu.Snapshot // the device's owned containers before
	target mu.Snapshot // the target's, with ops
}

// errNotConfirmed says the device did not take the push for good.
var errNotConfirmed = errors.New("push not confirmed")

// push runs one job on the manager's goroutine and reports its result:
//
//  1. read the running configuration;
//  2. diff it against the target (ownership: target and previous target)
//     and stop if nothing differs;
//  3. send the diff as one Set, a commit-confirmed commit where the device
//     supports it (rolling back by itself after the rollback duration);
//  4. read it back and check it holds the target;
//  5. confirm the commit.
//
// Any failure after the Set undoes it: a cancel of the commit, or on a
// device without commit-confirmed a compensating Set back to what step 1
// read. An abort (posture) before the Set changes nothing; after it, a
// pending commit is cancelled.
func (m *devman) push(ctx context.Context, j *pushJob) {
	res := m.doPush(ctx, j)
	if res.status == resConfirmed || res.status == resUnchanged {
		m.target, m.snap = j.target, nil
	}
	if res.err != nil {
		m.log.Warn("push failed", "commit", j.id, "status", res.status, "err", res.err)
	} else {
		m.log.Info("push done", "commit", j.id, "status", res.status, "ops", len(res.ops))
	}
	m.c.in.Put(evPush{device: m.name, gen: m.gen, job: j, res: res, at: m.c.opt.Now()})
	// Whatever happened, look again.
	if m.cl != nil && ctx.Err() == nil {
		m.check(ctx)
	}
}

func (m *devman) doPush(ctx context.Context, j *pushJob) pushResult {
	o := m.c.opt
	if m.credErr != nil {
		return pushResult{status: resUnreachable, err: m.credErr}
	}
	if m.cl == nil {
		if !m.connect(ctx) || m.cl == nil {
			return pushResult{status: resUnreachable, err: errors.New("not connected")}
		}
	}
	jctx, stop := mergeCtx(ctx, j.ctx)
	defer stop()
	rpc := func() (context.Context, context.CancelFunc) { return context.WithTimeout(jctx, o.RPCTimeout) }
	ph := phases{log: m.log, id: j.id, last: time.Now()}
	defer ph.done()

	c, cancel := rpc()
	before, err := m.cl.snapshot(c)
	cancel()
	if err != nil {
		if j.ctx.Err() != nil {
			return pushResult{status: resAborted, err: context.Cause(j.ctx)}
		}
		return pushResult{status: classify(err), err: err}
	}
	ph.mark("get")
	ws, err := mu.SnapshotOf(j.target)
	if err != nil {
		return pushResult{status: resRejected, err: err, before: before}
	}
	ss := m.snap
	if j.scope != m.target || ss == nil {
		if ss, err = mu.SnapshotOf(j.scope); err != nil {
			return pushResult{status: resRejected, err: err, before: before}
		}
	}
	ops, err := mu.DiffSnapshot(before, j.target, ws, ss)
	if err != nil {
		return pushResult{status: resRejected, err: err, before: before}
	}
	ph.mark("diff")
	if len(ops) == 0 {
		return pushResult{status: resUnchanged, before: before}
	}
	if j.ctx.Err() != nil {
		return pushResult{status: resAborted, err: context.Cause(j.ctx), before: before}
	}
	req := mu.SetRequest(ops)
	cc := m.cfg.CommitConfirmed
	// After the Set, an abort still interrupts a commit-confirmed push
	// (its cancel undoes it); a plain Set is finished and verified.
	post := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, o.RPCTimeout) }
	if cc {
		post = rpc
	}
	if cc {
		req.Extension = append(req.Extension, commitRequest(j.id, j.rollback))
	}
	// The Set itself is not abortable: its outcome must be known to be
	// undone. An abort takes effect right after it.
	c, cancel = context.WithTimeout(ctx, o.RPCTimeout)
	err = m.cl.set(c, req)
	cancel()
	ph.mark("set")
	res := pushResult{ops: ops, before: before, target: ws}
	if err != nil {
		if !unreachable(err) {
			// The device answered no: a Set is all or nothing.
			res.status, res.err = resRejected, err
			return res
		}
		// The outcome is unknown: make sure nothing stays.
		res.status = resUnreachable
		res.err = m.undo(ctx, j, cc, before, ws, ss, fmt.Errorf("set: %w", err))
		return res
	}
	c, cancel = post()
	after, err := m.cl.snapshot(c)
	cancel()
	if err == nil {
		if left := mu.Holds(after, ws, ss); len(left) > 0 {
			err = fmt.Errorf("verify: the device holds %d container(s) other than pushed: %v", len(left), left)
		}
	}
	ph.mark("verify")
	if err == nil && j.ctx.Err() != nil && cc {
		err = fmt.Errorf("aborted before confirm: %w", context.Cause(j.ctx))
	}
	if err == nil && cc {
		c, cancel = post()
		err = m.cl.confirm(c, j.id)
		cancel()
		ph.mark("confirm")
	}
	if err != nil {
		res.status = resRolledBack
		if cc && j.ctx.Err() != nil {
			res.status = resAborted
			err = fmt.Errorf("aborted: %w", context.Cause(j.ctx))
		}
		res.err = m.undo(ctx, j, cc, before, ws, ss, err)
		return res
	}
	res.status = resConfirmed
	return res
}

// undo takes back a Set whose push failed (cause): a cancel of the
// commit, or a compensating Set that puts back what before held of the
// containers the push owned (ws and ss: the target's and the previous
// target's snapshots). It returns the error to report, saying how the
// device was restored.
func (m *devman) undo(ctx context.Context, j *pushJob, cc bool, before, ws, ss mu.Snapshot, cause error) error {
	o := m.c.opt
	// The push's own context may be cancelled (an abort): undo anyway,
	// within the RPC timeout.
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.RPCTimeout)
	defer cancel()
	if cc {
		if err := m.cl.cancel(c, j.id); err != nil {
			return fmt.Errorf("%w: %w; cancel failed (%v): the device rolls back by itself within %s", errNotConfirmed, cause, err, j.rollback)
		}
		return fmt.Errorf("%w: %w; cancelled, the device rolled back", errNotConfirmed, cause)
	}
	after, err := m.cl.snapshot(c)
	if err != nil {
		return fmt.Errorf("%w: %w; compensating Set impossible (%v): the device may hold part of the push", errNotConfirmed, cause, err)
	}
	ops, err := mu.Restore(after, before, ws, ss)
	if err == nil && len(ops) > 0 {
		err = m.cl.set(c, mu.SetRequest(ops))
	}
	if err != nil {
		return fmt.Errorf("%w: %w; compensating Set failed (%v): the device may hold part of the push", errNotConfirmed, cause, err)
	}
	return fmt.Errorf("%w: %w; undone with a compensating Set", errNotConfirmed, cause)
}

// classify names the outcome of an error that reached no Set.
func classify(err error) string {
	if unreachable(err) {
		return resUnreachable
	}
	return resRejected
}

// mergeCtx is ctx that also ends when other does.
func mergeCtx(ctx, other context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return c, func() { stop(); cancel(nil) }
}

// phases times a push's steps for the debug log.
type phases struct {
	log  *slog.Logger
	id   string
	last time.Time
	args []any
}

func (p *phases) mark(name string) {
	now := time.Now()
	p.args = append(p.args, name, now.Sub(p.last))
	p.last = now
}

func (p *phases) done() { p.log.Debug("push phases", append([]any{"commit", p.id}, p.args...)...) }
