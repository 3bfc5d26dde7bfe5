package routes

// The state of a change patched in is committed beside the next
// reconcile: see commitLater.

import (
	"context"
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/intent"
)

// stateCommit is a change's state commit running on its own goroutine.
type stateCommit struct {
	ctx  context.Context
	done chan struct{}
	err  error
	// progress: the commit writes programmed-sequence seq (the set had
	// hasAFT).
	progress bool
	seq      uint64
	hasAFT   bool
}

// commitLater commits ops (the state of the change s just patched in) on
// another goroutine, so the reconciler reads and patches in the next
// change while the tree takes this one's state: a gRIBI bulk load's
// route count in the kernel, not the state, is what a controller waits
// for, and the state commit of a batch of 45,000 entries was about a
// fifth of the reconciler's time. It stays correct: a route is stated
// installed, and its FIB acknowledgement (programmed-sequence) sent,
// only after the kernel holds it, and the state commits stay in order,
// since the next one waits for this one (awaitState).
func (a *applier) commitLater(ctx context.Context, ops []store.Op, progress bool, s intent.RouteSet) {
	c := &stateCommit{ctx: ctx, done: make(chan struct{}), progress: progress, seq: s.Seq, hasAFT: s.HasAFT}
	a.pending = c
	a.bg.Go(func() {
		defer close(c.done)
		c.err = a.commitState(ctx, ops)
	})
}

// awaitState waits for the pending state commit and takes its outcome in
// (a.mu held): on failure nothing is known of what the tree holds, so
// the state is written whole next time, and the applier no longer
// follows.
func (a *applier) awaitState() error {
	c := a.pending
	if c == nil {
		return nil
	}
	<-c.done
	a.pending = nil
	if c.err != nil {
		a.written, a.marks, a.vlans = nil, nil, nil
		a.follows = false
		if c.ctx.Err() == nil {
			a.log.Warn("write route state", "err", c.err)
		}
		return fmt.Errorf("write route state: %w", c.err)
	}
	if c.progress {
		a.programmed, a.hadAFT = c.seq, c.hasAFT
	}
	return nil
}

// wait waits for the state commit still running, if any (Close).
func (a *applier) wait() { a.bg.Wait() }
