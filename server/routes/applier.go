package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// routeBackend is what the applier needs of the route backend (a
// route.Backend: kernel.Backend, or routetest.Fake in tests).
type routeBackend interface {
	Set(ctx context.Context, cfg route.Config) error
	// Patch applies a change to the desired routes; route.ErrNoBase
	// says Set the whole Config instead.
	Patch(ctx context.Context, p route.Patch) error
	// CopyStatus copies the outcome of the last Set (per route, in
	// Config order) into dst, reusing its slices.
	CopyStatus(dst *route.Status)
}

// stateCommitter reads the tree and writes state (*store.Store).
type stateCommitter interface {
	Read(fn func(t *tree.Tree) error) error
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// applier applies a RouteSet to the backend and writes each route's
// and pod's outcome into the tree's state, in one state commit per Set.
type applier struct {
	b   routeBackend
	st  stateCommitter
	log *slog.Logger

	mu sync.Mutex // serialises Set: the reconciler and the posture step share it
	// written is the status and reason last committed per entry, so a Set
	// writes only what changed (one route out of 100,000, not all).
	written *stateRecord
	// marks is the routes list's entries as last written, in order (see
	// stateOps); spareMarks is its other buffer.
	marks, spareMarks []stateMark
	// pods aggregates the pods' routes of one state commit (state.go).
	pods   podAggs
	status route.Status // the backend's last outcome, its slices reused
	// programmed is the last programmed-sequence written; hadAFT says
	// whether the AFT held entries then.
	programmed uint64
	hadAFT     bool
	// vlans is the underlay VLAN state last written (vlans.go).
	vlans map[uint16]vlanVal
	// full computes the reconciler's whole intent now, from the cache
	// whose changes (RouteSet.Delta) the reconciler passes (nil: none).
	full func() (intent.RouteSet, error)
	// follows: the backend and the state hold exactly the last set the
	// reconciler passed, so its next change may be patched in.
	follows bool
	// stats counts patches and whole Sets (ApplyStats).
	stats ApplyStats
	// pending is the state commit of the last change patched in, which
	// runs beside the next reconcile (see commitLater); bg tracks it.
	pending *stateCommit
	bg      sync.WaitGroup
}

// ApplyStats count how the applier applied the reconciler's sets: a
// change patched in, or the whole Config Set (with why, when the set was
// a change the applier could not patch in). A busy node's pods should
// cost Patches, not whole Sets.
type ApplyStats struct {
	Patches   int // changes patched in (route.Backend.Patch applied)
	WholeSets int // whole Configs Set, the posture step's included
	// Fallbacks counts the whole Sets made of a change set, by reason:
	// "not following" (the last set was not wholly applied), "vlans
	// unstated", or "backend" (Patch refused with route.ErrNoBase).
	Fallbacks map[string]int
}

// fallback records that the change s could not be patched in.
func (a *applier) fallback(s intent.RouteSet, reason string, err error) {
	if a.stats.Fallbacks == nil {
		a.stats.Fallbacks = map[string]int{}
	}
	a.stats.Fallbacks[reason]++
	a.log.Debug("routes change applied whole", "reason", reason, "err", err,
		"put", len(s.Delta.Patch.Put), "del", len(s.Delta.Patch.Del))
}

// newApplier returns the applier of b writing state to st; cache is the
// reconciler's, whose change sets it applies.
func newApplier(b routeBackend, st Store, log *slog.Logger, cache *intent.RouteCache) *applier {
	a := &applier{b: b, st: st, log: log}
	// A change set the applier cannot patch in is replaced by the whole
	// intent, computed by the same cache (on the reconciler's goroutine,
	// which calls the applier) from the tree as it is now.
	a.full = func() (intent.RouteSet, error) {
		var s intent.RouteSet
		err := st.ReadAt(func(t *tree.Tree, seq uint64) error {
			var err error
			s, err = cache.Routes(t, accord.Current(t), seq)
			s.Seq = seq
			return err
		})
		return s, err
	}
	return a
}

// Set applies s and records the outcome. It returns the backend's error:
// per-route failures (also in state) included, so the reconciler retries
// them (a gateway may become reachable).
func (a *applier) Set(ctx context.Context, s intent.RouteSet) error {
	return a.set(ctx, s, false)
}

// set applies s; step says it is the posture step's (computed apart from
// the reconciler's cache, which a change set is relative to).
func (a *applier) set(ctx context.Context, s intent.RouteSet, step bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.Delta == nil || s.Next != nil || !a.follows {
		// Anything but a change patched in whole reads or rewrites
		// what the last state commit wrote: it waits for it first.
		_ = a.awaitState()
	}
	follows := a.follows
	a.follows = false // until this set is wholly applied
	if s.Delta != nil {
		switch {
		case !follows || a.written == nil:
			a.fallback(s, "not following", nil)
		case !a.vlansStated(s):
			a.fallback(s, "vlans unstated", nil)
		case s.Next != nil:
			whole, err := a.pipelined(ctx, s)
			if whole == nil {
				a.stats.Patches++
				return err
			}
			// A part the backend refused, or one the intent had to
			// compute whole: the whole set is applied instead.
			a.fallback(s, "parts", nil)
			s = *whole
		default:
			err := a.b.Patch(ctx, s.Delta.Patch)
			if !errors.Is(err, route.ErrNoBase) {
				a.stats.Patches++
				err = a.patched(ctx, s, err)
				s.Release() // its state is written: its lists go to the next change
				return err
			}
			a.fallback(s, "backend", err)
		}
	}
	if s.Delta != nil {
		// The change cannot be patched in (the backend or the state
		// does not hold the set it changes): apply the whole intent.
		s.Release()
		var err error
		if s, err = a.full(); err != nil {
			return fmt.Errorf("compute routes intent: %w", err)
		}
	}
	_ = a.awaitState() // a change that fell back to the whole set
	start := time.Now()
	a.stats.WholeSets++
	err := a.b.Set(ctx, s.Config)
	kernel := time.Since(start)
	if ctx.Err() != nil {
		return err
	}
	if err != nil && !itemErrorsOnly(err) {
		// The backend's Status is not about this Set; the state keeps the
		// last known outcome until the retry succeeds.
		return err
	}
	a.b.CopyStatus(&a.status)
	st := a.status
	ops := a.stateOps(s, st)
	progress := a.progressOps(s)
	ops = append(ops, progress...)
	ops = append(ops, a.vlanOps(s, st)...)
	opsDone := time.Now()
	if len(ops) > 0 {
		if serr := a.commitState(ctx, ops); serr != nil {
			a.written, a.marks, a.vlans = nil, nil, nil // unknown what the tree holds: write everything next time
			if ctx.Err() == nil {
				a.log.Warn("write route state", "err", serr)
			}
			return err
		}
		if len(progress) > 0 {
			a.programmed, a.hadAFT = s.Seq, s.HasAFT
		}
	}
	a.log.Debug("routes applied", "routes", len(s.Config.Routes), "added", st.Added, "removed", st.Removed,
		"sends", st.Sends, "kernel", kernel, "state_ops", len(ops), "state_build", opsDone.Sub(start)-kernel,
		"state_commit", time.Since(opsDone))
	a.follows = err == nil && !step
	return err
}

// patched records the outcome of patching in s's change (err is Patch's):
// its state is committed beside the next reconcile (commitLater), once
// the state commit of the change before it is done.
func (a *applier) patched(ctx context.Context, s intent.RouteSet, err error) error {
	if serr := a.awaitState(); serr != nil {
		// What the tree holds of the state is unknown: the error makes
		// the reconciler try again, and the retry, not following, sets
		// the whole intent and writes every entry's state.
		return errors.Join(err, serr)
	}
	if ctx.Err() != nil || (err != nil && !itemErrorsOnly(err)) {
		return err
	}
	a.b.CopyStatus(&a.status)
	ops := a.deltaStateOps(nil, s, a.status)
	progress := a.progressOps(s)
	ops = append(ops, progress...)
	if len(ops) > 0 {
		a.commitLater(ctx, ops, len(progress) > 0, s)
	}
	if cap(a.status.Routes) > 4096 {
		a.status.Routes = nil // a bulk change's outcome, in ops now
	}
	a.log.Debug("routes patched", "put", len(s.Delta.Patch.Put), "del", len(s.Delta.Patch.Del),
		"added", a.status.Added, "removed", a.status.Removed, "state_ops", len(ops))
	a.follows = err == nil
	return err
}

// progressOps writes how far the backend programmed the tree (s.Seq),
// for the gRIBI service, which answers FIB acknowledgements from the
// entries' state once it says the backend applied their commit: written
// after a whole set or a change set while the AFT holds entries, and
// once more when it has emptied.
func (a *applier) progressOps(s intent.RouteSet) []store.Op {
	if s.Seq <= a.programmed || !(s.HasAFT || a.hadAFT) {
		return nil
	}
	return []store.Op{store.Update(kedgepath.Root().Kedge().Aft().State().ProgrammedSequence(), s.Seq)}
}

// pipelined patches in a change that comes in parts (a bulk Set): each
// part is patched in while the next is read, on another goroutine, and
// the state of every part is written in one commit after the last,
// so the kernel is not kept waiting for it. It returns the whole set to
// apply instead when the change cannot go on as parts (the backend
// refuses a part with ErrNoBase, or the intent's next part is whole), with
// the state of the parts patched in before it written; else Patch's or
// the state write's outcome. The reading goroutine is done when it
// returns: the cache is the caller's again.
func (a *applier) pipelined(ctx context.Context, s intent.RouteSet) (*intent.RouteSet, error) {
	type part struct {
		s   intent.RouteSet
		err error
	}
	parts := make(chan part, 1) // one part read ahead
	stop := make(chan struct{})
	go func() {
		defer close(parts)
		for next := s.Next; next != nil; {
			p, err := next()
			select {
			case parts <- part{p, err}:
			case <-stop:
				return
			}
			if err != nil || p.Delta == nil {
				return
			}
			next = p.Next
		}
	}()
	// finish stops the reader and waits for it to let go of the cache.
	finished := false
	finish := func() {
		if !finished {
			finished = true
			close(stop)
			for range parts {
			}
		}
	}
	defer finish()
	// The parts patched in and their outcomes, whose state is written
	// after the last (or before giving up on parts).
	type done struct {
		s  intent.RouteSet
		st route.Status
	}
	var patched []done
	// flush writes the state of the parts patched in so far and, after
	// the last part (whole), how far the backend programmed the tree: the
	// gRIBI service's FIB acknowledgements wait for that, and a change
	// given up on halfway has not programmed its commit.
	flush := func(whole bool) error {
		var progress []store.Op
		var last intent.RouteSet
		n := 0
		for i := range patched {
			n += deltaOpsHint(patched[i].s)
		}
		ops := make([]store.Op, 0, n)
		for i := range patched {
			ops = a.deltaStateOps(ops, patched[i].s, patched[i].st)
			last = patched[i].s
			patched[i].s.Release() // read: its lists go to the parts after
		}
		if whole {
			progress = a.progressOps(last) // every part has the commit's Seq
		}
		ops = append(ops, progress...)
		patched = nil
		if len(ops) == 0 {
			return nil
		}
		if err := a.commitState(ctx, ops); err != nil {
			a.written, a.marks, a.vlans = nil, nil, nil
			if ctx.Err() == nil {
				a.log.Warn("write route state", "err", err)
			}
			return err
		}
		if len(progress) > 0 {
			a.programmed, a.hadAFT = last.Seq, last.HasAFT
		}
		return nil
	}
	n, put := 0, 0
	for cur := s; ; {
		err := a.b.Patch(ctx, cur.Delta.Patch)
		if errors.Is(err, route.ErrNoBase) {
			if ferr := flush(false); ferr != nil {
				return nil, err
			}
			finish()
			whole, ferr := a.full()
			if ferr != nil {
				return nil, fmt.Errorf("compute routes intent: %w", ferr)
			}
			return &whole, nil
		}
		if ctx.Err() != nil || (err != nil && !itemErrorsOnly(err)) {
			a.written, a.marks, a.vlans = nil, nil, nil // parts of the state unwritten
			return nil, err
		}
		var st route.Status
		a.b.CopyStatus(&st)
		patched = append(patched, done{cur, st})
		n, put = n+1, put+len(cur.Delta.Patch.Put)
		if err != nil || cur.Next == nil {
			// Done, or a route failed: the backend takes no Patch
			// after that, and the reconciler retries with the whole
			// set (the parts not read stay dirty in the cache).
			a.log.Debug("routes patched in parts", "parts", n, "put", put)
			if ferr := flush(cur.Next == nil); ferr != nil {
				return nil, err
			}
			a.follows = err == nil
			return nil, err
		}
		p, ok := <-parts
		switch {
		case !ok:
			return nil, errors.New("read routes intent: the parts ended early")
		case p.err != nil:
			_ = flush(false)
			return nil, fmt.Errorf("compute routes intent: %w", p.err)
		case p.s.Delta == nil:
			if ferr := flush(false); ferr != nil {
				return nil, ferr
			}
			return &p.s, nil
		}
		cur = p.s
	}
}

// vlansStated reports whether every VLAN of s has its state (a change
// set leaves the VLANs' state as it is).
func (a *applier) vlansStated(s intent.RouteSet) bool {
	for _, v := range s.VLANs {
		if !v.Stated {
			return false
		}
	}
	return true
}

// commitState commits ops. State can only be written to entries that
// exist, so an entry deleted since the intent was read fails the whole
// commit; then the ops of entries that are gone are dropped and the rest
// committed once more. (The deletion also triggers another reconcile.)
func (a *applier) commitState(ctx context.Context, ops []store.Op) error {
	_, err := a.st.CommitState(ctx, ops)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var live []store.Op
	if rerr := a.st.Read(func(t *tree.Tree) error {
		for _, op := range ops {
			// The entry is an entry operation's key or path, else the
			// path without its state/leaf tail.
			entry := op.Path
			switch {
			case op.Key != nil:
				entry = op.Key.Elems()
			case op.Kind != store.OpEntry:
				entry = op.Path[:len(op.Path)-2]
			}
			if _, ok, _ := t.Lookup(entry); ok {
				live = append(live, op)
			}
		}
		return nil
	}); rerr != nil {
		return rerr
	}
	if len(live) == len(ops) {
		return err
	}
	_, err = a.st.CommitState(ctx, live)
	return err
}

// stepApplier is the applier as a posture step: a route that fails
// (bad gateway, unknown device) is in its state and retried by the
// reconciler; it does not fail the posture transition.
type stepApplier struct{ a *applier }

func (s stepApplier) Set(ctx context.Context, rs intent.RouteSet) error {
	err := s.a.set(ctx, rs, true)
	if err != nil && itemErrorsOnly(err) {
		return nil
	}
	return err
}

// itemErrorsOnly reports whether err is only the failures of single
// routes, rules or interfaces, which Status records per item.
func itemErrorsOnly(err error) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *route.RouteError
		var ru *route.RuleError
		var ie *route.InterfaceError
		if !errors.As(e, &re) && !errors.As(e, &ru) && !errors.As(e, &ie) {
			return false
		}
	}
	return len(errs) > 0
}

// applyStats returns a copy of the counters.
func (a *applier) applyStats() ApplyStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.stats
	st.Fallbacks = maps.Clone(st.Fallbacks)
	return st
}
