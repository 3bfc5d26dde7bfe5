// Package reconcile is the loop every dataplane backend runs under: watch
// the store's change feed, coalesce bursts (drain every commit that is
// ready, then reconcile once), translate the tree into the backend's plain
// Config with a pure intent function on a snapshot of the tree, call the
// backend's idempotent Set, write the outcome to state, and retry failures
// with capped exponential backoff. Every reconcile, retries included,
// computes the whole Config from the tree, so a backend error never loses
// a change; an intent may keep what it derived from unchanged parts of the
// tree (Options.IntentAt and Observe let it follow the feed), never what
// the backend did with it.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Backend makes the world match a whole Config. Set must be idempotent and
// return when ctx is done; it is called from one goroutine at a time.
type Backend[C any] interface {
	Set(ctx context.Context, cfg C) error
}

// Intent translates the tree into a backend Config. It runs on a snapshot
// of the tree (holding up no commit) and must not modify it.
type Intent[C any] func(t *tree.Tree) (C, error)

// Source is what a reconciler needs of the store (*store.Store).
type Source interface {
	Read(fn func(t *tree.Tree) error) error
	ReadAt(fn func(t *tree.Tree, seq uint64) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// Options configure a Reconciler.
type Options[C any] struct {
	// Name labels logs and errors (routes, mesh, ...).
	Name   string
	Logger *slog.Logger
	// Prefixes are the schema paths (e.g. /kedge/routes) whose config
	// changes trigger a reconcile; empty means every config change.
	Prefixes []string
	// StatePrefixes are state paths that also trigger one, e.g.
	// /kedge/posture/state/effective-level for posture-aware intent.
	StatePrefixes []string
	// Report returns the state operations that record a reconcile's
	// outcome (err is nil on success); nil writes nothing.
	Report func(cfg C, err error) []store.Op
	// RetryMin and RetryMax bound the backoff after a failed Set
	// (defaults 50 ms and 30 s).
	RetryMin, RetryMax time.Duration

	// An intent that keeps state between calls (a cache) may follow the
	// feed: IntentAt, when set, replaces the intent and also gets the
	// sequence number of the tree it reads; Observe is called with every
	// commit the reconciler reads from the feed, relevant or not, in
	// order; Lost when the feed was lost and commits went by unread.
	IntentAt func(t *tree.Tree, seq uint64) (C, error)
	Observe  func(seq uint64, state bool, changes []tree.Change)
	Lost     func()
}

// Stats count what a Reconciler did; for tests and metrics.
type Stats struct {
	Reconciles int   // attempts (intent computed, Set called unless intent failed)
	Failures   int   // Set or intent failures
	Resyncs    int   // times the watcher fell behind and the tree was re-read
	Commits    int   // relevant commits read from the feed
	LastErr    error // of the last reconcile, nil when it succeeded
}

// Reconciler runs one backend's loop. Create it with New and call Run once.
type Reconciler[C any] struct {
	src    Source
	intent Intent[C]
	b      Backend[C]
	o      Options[C]
	log    *slog.Logger
	kick   chan struct{}

	mu    sync.Mutex
	stats Stats
}

// New returns a reconciler of b driven by src through intent (nil when
// o.IntentAt is set).
func New[C any](src Source, intent Intent[C], b Backend[C], o Options[C]) *Reconciler[C] {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	return &Reconciler[C]{src: src, intent: intent, b: b, o: o,
		log: o.Logger.With("reconciler", o.Name), kick: make(chan struct{}, 1)}
}

// Stats returns a copy of the counters.
func (r *Reconciler[C]) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Kick asks for a reconcile even though the tree did not change (the
// backend knows its world drifted), at once, even during a retry's
// backoff. It never blocks.
func (r *Reconciler[C]) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run reconciles once, then on every relevant change, until ctx is done
// (it then returns nil) or the store closes.
func (r *Reconciler[C]) Run(ctx context.Context) error {
	w, err := r.src.ReadWatch(func(*tree.Tree, uint64) error { return nil })
	if err != nil {
		return fmt.Errorf("watch tree for %s: %w", r.o.Name, err)
	}
	dirty := true
	var backoff time.Duration
	var retry <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if dirty && retry == nil {
			var err error
			if w, err = r.reconcile(ctx, w); err != nil && ctx.Err() == nil {
				// Recompute and retry later; changes that arrive meanwhile
				// are folded into that attempt.
				backoff = min(max(2*backoff, r.o.RetryMin), r.o.RetryMax)
				timer = time.NewTimer(backoff)
				retry = timer.C
			} else {
				dirty, backoff = false, 0
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-retry:
			retry, timer = nil, nil
		case <-r.kick:
			// The backend saw its world change: try now rather than at
			// the end of a backoff (a failing route may have just become
			// possible); a new failure keeps doubling the delay.
			dirty = true
			if timer != nil {
				timer.Stop()
				retry, timer = nil, nil
			}
		case <-w.Ready():
			changed, nw, err := r.drain(ctx, w)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read change feed for %s: %w", r.o.Name, err)
			}
			w = nw
			dirty = dirty || changed
		}
	}
}

// drain reads every ready commit and reports whether one was relevant. On
// ErrResync it starts a new watcher at the current tree: the next
// reconcile reads the whole tree anyway, so nothing is lost.
func (r *Reconciler[C]) drain(ctx context.Context, w *store.Watcher) (bool, *store.Watcher, error) {
	changed := false
	for {
		select {
		case <-w.Ready():
		default:
			return changed, w, nil
		}
		c, err := w.Next(ctx)
		if errors.Is(err, store.ErrResync) {
			r.mu.Lock()
			r.stats.Resyncs++
			r.mu.Unlock()
			if r.o.Lost != nil {
				r.o.Lost()
			}
			r.log.Warn("fell behind the change feed; resyncing from the tree")
			nw, err := r.src.ReadWatch(func(*tree.Tree, uint64) error { return nil })
			return true, nw, err
		}
		if err != nil {
			return changed, w, err
		}
		if r.o.Observe != nil {
			r.o.Observe(c.Seq, c.State, c.Changes)
		}
		if r.relevant(c) {
			changed = true
			r.mu.Lock()
			r.stats.Commits++
			r.mu.Unlock()
		}
	}
}

func (r *Reconciler[C]) relevant(c *store.Commit) bool {
	prefixes := r.o.Prefixes
	if c.State {
		prefixes = r.o.StatePrefixes
		if len(prefixes) == 0 {
			return false
		}
	} else if len(prefixes) == 0 {
		return len(c.Changes) > 0
	}
	return c.Touches(prefixes)
}

// reconcile computes the intent from the tree and applies it. An intent
// that follows the feed is first told of every commit up to the tree it
// reads (catchUp), so it returns the watcher it may have replaced.
func (r *Reconciler[C]) reconcile(ctx context.Context, w *store.Watcher) (*store.Watcher, error) {
	var cfg C
	var err error
	if r.o.IntentAt != nil {
		err = r.src.ReadAt(func(t *tree.Tree, seq uint64) error {
			var err error
			if w, err = r.catchUp(ctx, w, seq); err != nil {
				return err
			}
			cfg, err = r.o.IntentAt(t, seq)
			return err
		})
	} else {
		err = r.src.Read(func(t *tree.Tree) error {
			var err error
			cfg, err = r.intent(t)
			return err
		})
	}
	if err != nil {
		err = fmt.Errorf("compute %s intent: %w", r.o.Name, err)
	} else {
		err = r.b.Set(ctx, cfg)
	}
	r.mu.Lock()
	r.stats.Reconciles++
	if err != nil {
		r.stats.Failures++
	}
	r.stats.LastErr = err
	r.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		r.log.Warn("reconcile failed", "err", err)
	}
	if r.o.Report != nil && ctx.Err() == nil {
		if ops := r.o.Report(cfg, err); len(ops) > 0 {
			if _, serr := r.src.CommitState(ctx, ops); serr != nil {
				r.log.Warn("write reconcile state", "err", serr)
			}
		}
	}
	return w, err
}

// catchUp reads the feed through commit seq, the one the tree an intent
// is about to read ends with, and tells Observe of each. A reconcile
// often reads a tree a commit or two ahead of the feed it drained (a
// kick, the reconciler's own state commit, a commit landing meanwhile);
// an intent that follows the feed would otherwise find commits it was not
// told of and compute everything again (at 100,000 routes, a whole
// intent and Set for one pod). The store publishes a version just before
// its commit reaches the feed, so waiting for it is short.
func (r *Reconciler[C]) catchUp(ctx context.Context, w *store.Watcher, seq uint64) (*store.Watcher, error) {
	if r.o.Observe == nil {
		return w, nil
	}
	for w.Pos() <= seq {
		c, err := w.Next(ctx)
		if errors.Is(err, store.ErrResync) {
			r.mu.Lock()
			r.stats.Resyncs++
			r.mu.Unlock()
			if r.o.Lost != nil {
				r.o.Lost()
			}
			r.log.Warn("fell behind the change feed; resyncing from the tree")
			nw, err := r.src.ReadWatch(func(*tree.Tree, uint64) error { return nil })
			if err != nil {
				return w, fmt.Errorf("watch tree for %s: %w", r.o.Name, err)
			}
			return nw, nil
		}
		if err != nil {
			return w, fmt.Errorf("read change feed for %s: %w", r.o.Name, err)
		}
		r.o.Observe(c.Seq, c.State, c.Changes)
		if r.relevant(c) {
			r.mu.Lock()
			r.stats.Commits++
			r.mu.Unlock()
		}
	}
	return w, nil
}
