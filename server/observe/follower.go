package observe

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/summary"
)

// Source is what the follower needs of the tree store (*store.Store).
type Source interface {
	ReadAt(fn func(t *tree.Tree, seq uint64) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
}

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	Logger *slog.Logger
	// OnSummary is called with each summary the follower publishes, from
	// its goroutine, before subscribers are woken (the metrics' gauges).
	OnSummary func(*summary.Node)
	// OnDelay is called with how long after its commit the follower read
	// each commit from the change feed.
	OnDelay func(time.Duration)
	// Now is the clock and After the timer (tests).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// holdFactor bounds how much of a core the follower spends recounting one
// section: a section whose last recount took d is recounted again no
// sooner than holdFactor·d after it ended, so at most 1/(1+holdFactor) of
// the time. (It was written when a recount held the store's read lock and
// blocked commits; readers now work on a snapshot, and the bound keeps the
// recounts from taking the committer's core on a two-core node.) A recount
// takes microseconds at the sizes most nodes have; at 100,000 routes the
// routes section takes about 100 ms (BenchmarkRoutes100k in
// models/summary), so commits of a few routes each trail by up to 0.4 s;
// bulk commits are held back longer (bulkHold).
const holdFactor = 4

// A bulk load (a 100,000-route Set, then the routes reconciler's state
// commits of its batches) wants both cores for the backends that program
// it, not for a status page counting it while it lands: a section a bulk
// commit (at least bulkChanges changes) touched is recounted bulkHold
// after that commit, however many commits touch it meanwhile, so the page
// trails a bulk load by up to bulkHold plus a recount, and a stream of
// bulk commits never starves it. (A hold until the feed is quiet does not
// do: the routes reconciler programs the kernel for 0.3-0.5 s after the
// Set's commit before its first state commit, a runtime/trace of
// BenchmarkRoutes100k in tests shows.) Commits smaller than bulkChanges
// to a section not held back are counted as before (holdFactor).
const (
	bulkChanges = 4096
	bulkHold    = time.Second
)

// Follower keeps the node's summary current from the store's change feed:
// it reads every commit, notes which sections of the summary it touched,
// and after each burst recomputes just those sections from the tree and
// publishes the new summary. Published summaries are never modified, so
// readers share them freely.
type Follower struct {
	src Source
	o   FollowerOptions
	log *slog.Logger
	// sections maps a top-level container's schema path (/kedge/routes)
	// to the summary section that reads it.
	sections map[string]summary.Section
	// earliest is when each section may next be recounted (see
	// holdFactor); only Run's goroutine uses it.
	earliest map[summary.Section]time.Time
	hold     time.Duration // holdFactor (a benchmark compares 0)
	// bulkSince is when a bulk commit held back each section not
	// recounted since (see bulkChanges); only Run's goroutine uses it.
	bulkSince map[summary.Section]time.Time
	bulk      int // bulkChanges (tests set fewer)

	mu      sync.Mutex
	cur     *summary.Node
	changed chan struct{} // closed and replaced at each publication

	processed atomic.Uint64
	following atomic.Bool
}

// NewFollower returns a follower of src; it reads nothing until Run.
func NewFollower(src Source, o FollowerOptions) *Follower {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	f := &Follower{src: src, o: o, log: o.Logger, sections: map[string]summary.Section{},
		earliest: map[summary.Section]time.Time{}, hold: holdFactor, changed: make(chan struct{}),
		bulkSince: map[summary.Section]time.Time{}, bulk: bulkChanges}
	for s, ps := range summary.Prefixes() {
		for _, p := range ps {
			f.sections[p] = s
		}
	}
	return f
}

// Current returns the latest summary (nil before Run read the tree) and
// a channel closed when a newer one is published.
func (f *Follower) Current() (*summary.Node, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.changed
}

// Processed returns the sequence number of the last commit the published
// summary reflects in every section (a section whose recount is held back
// keeps it behind).
func (f *Follower) Processed() uint64 { return f.processed.Load() }

// Following reports whether the follower is reading the change feed: the
// store is open and the follower has its first summary.
func (f *Follower) Following() bool { return f.following.Load() }

// Run follows the change feed until ctx ends (it returns nil) or the store
// closes (it returns store.ErrClosed).
func (f *Follower) Run(ctx context.Context) error {
	defer f.following.Store(false)
	w, err := f.readAll()
	if err != nil {
		return err
	}
	f.following.Store(true)
	pending := map[summary.Section]bool{}
	var wake <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Ready():
		case <-wake:
			wake = nil
		}
		dirty, bulk, err := f.drain(w)
		switch {
		case errors.Is(err, store.ErrResync):
			f.log.Warn("status follower fell behind the change feed; re-reading the tree")
			if w, err = f.readAll(); err != nil {
				return err
			}
			clear(pending)
			clear(f.bulkSince)
			wake = nil
			continue
		case err != nil:
			return err
		}
		for s := range dirty {
			pending[s] = true
		}
		if f.holdBulk(bulk) {
			// A timer set for an earlier time would fire early; due
			// sets it again for whatever remains.
			wake = nil
		}
		due, wait := f.due(pending)
		if len(due) > 0 {
			if err := f.refresh(due, len(pending) == len(due)); err != nil {
				return err
			}
			for s := range due {
				delete(pending, s)
			}
		} else if len(pending) == 0 {
			f.processed.Store(w.Pos() - 1)
		}
		if len(pending) > 0 && wake == nil {
			wake = f.o.After(wait)
		}
	}
}

// holdBulk holds back the recount of the sections a bulk commit touched
// that are not held back already, to bulkHold from now. It reports
// whether it held back any.
func (f *Follower) holdBulk(bulk map[summary.Section]bool) bool {
	now := f.o.Now()
	held := false
	for s := range bulk {
		if _, ok := f.bulkSince[s]; ok {
			continue
		}
		f.bulkSince[s] = now
		if until := now.Add(bulkHold); until.After(f.earliest[s]) {
			f.earliest[s] = until
		}
		held = true
	}
	return held
}

// due returns the pending sections that may be recounted now, and how
// long until the first of the others may.
func (f *Follower) due(pending map[summary.Section]bool) (map[summary.Section]bool, time.Duration) {
	now := f.o.Now()
	due := map[summary.Section]bool{}
	var wait time.Duration
	for s := range pending {
		d := f.earliest[s].Sub(now)
		if d <= 0 {
			due[s] = true
			continue
		}
		if wait == 0 || d < wait {
			wait = d
		}
	}
	return due, wait
}

// readAll summarizes the whole tree and returns a watcher right after it.
func (f *Follower) readAll() (*store.Watcher, error) {
	var n *summary.Node
	w, err := f.src.ReadWatch(func(t *tree.Tree, seq uint64) error {
		n = summary.Of(t)
		n.Seq = seq
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.publish(n, true)
	return w, nil
}

// drain reads every commit that is ready and returns the sections they
// touched, and those of them a bulk commit touched. It looks at each
// commit's distinct schema nodes (shared with the feed's other watchers),
// not at each of its changes.
func (f *Follower) drain(w *store.Watcher) (dirty, bulk map[summary.Section]bool, err error) {
	dirty, bulk = map[summary.Section]bool{}, map[summary.Section]bool{}
	for {
		c, ok, err := w.TryNext()
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return dirty, bulk, nil
		}
		if f.o.OnDelay != nil {
			f.o.OnDelay(f.o.Now().Sub(c.Time))
		}
		for _, n := range c.Nodes() {
			if s, ok := f.sections[topLevel(n.Path)]; ok {
				dirty[s] = true
				if len(c.Changes) >= f.bulk {
					bulk[s] = true
				}
			}
		}
	}
}

// topLevel cuts a schema path to its first two elements (/kedge/routes).
func topLevel(p string) string {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			n++
			if n == 3 {
				return p[:i]
			}
		}
	}
	return p
}

// refresh recomputes the dirty sections over a copy of the current
// summary and publishes it; complete says no other section is held back,
// so the summary reflects every commit up to the tree's.
func (f *Follower) refresh(dirty map[summary.Section]bool, complete bool) error {
	prev, _ := f.Current()
	next := *prev
	err := f.src.ReadAt(func(t *tree.Tree, seq uint64) error {
		for s := range dirty {
			t0 := f.o.Now()
			summary.Fill(&next, t, s)
			t1 := f.o.Now()
			f.earliest[s] = t1.Add(f.hold * t1.Sub(t0))
			delete(f.bulkSince, s)
		}
		next.Seq = seq
		return nil
	})
	if err != nil {
		return err
	}
	f.publish(&next, complete)
	return nil
}

func (f *Follower) publish(n *summary.Node, complete bool) {
	if f.o.OnSummary != nil {
		f.o.OnSummary(n)
	}
	// Processed moves before readers are woken, so a reader woken by this
	// summary sees it.
	if complete {
		f.processed.Store(n.Seq)
	}
	f.mu.Lock()
	f.cur = n
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}
