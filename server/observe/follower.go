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
	// Now is the clock (tests).
	Now func() time.Time
}

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
	f := &Follower{src: src, o: o, log: o.Logger, sections: map[string]summary.Section{}, changed: make(chan struct{})}
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
// summary reflects.
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Ready():
		}
		dirty, err := f.drain(w)
		switch {
		case errors.Is(err, store.ErrResync):
			f.log.Warn("status follower fell behind the change feed; re-reading the tree")
			if w, err = f.readAll(); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		if len(dirty) > 0 {
			if err := f.refresh(dirty); err != nil {
				return err
			}
		} else {
			f.processed.Store(w.Pos() - 1)
		}
	}
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
	f.publish(n)
	return w, nil
}

// drain reads every commit that is ready and returns the sections they
// touched.
func (f *Follower) drain(w *store.Watcher) (map[summary.Section]bool, error) {
	dirty := map[summary.Section]bool{}
	for {
		c, ok, err := w.TryNext()
		if err != nil {
			return nil, err
		}
		if !ok {
			return dirty, nil
		}
		if f.o.OnDelay != nil {
			f.o.OnDelay(f.o.Now().Sub(c.Time))
		}
		for _, ch := range c.Changes {
			if s, ok := f.sections[topLevel(ch.Node.Path)]; ok {
				dirty[s] = true
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
// summary and publishes it.
func (f *Follower) refresh(dirty map[summary.Section]bool) error {
	prev, _ := f.Current()
	next := *prev
	err := f.src.ReadAt(func(t *tree.Tree, seq uint64) error {
		for s := range dirty {
			summary.Fill(&next, t, s)
		}
		next.Seq = seq
		return nil
	})
	if err != nil {
		return err
	}
	f.publish(&next)
	return nil
}

func (f *Follower) publish(n *summary.Node) {
	if f.o.OnSummary != nil {
		f.o.OnSummary(n)
	}
	f.mu.Lock()
	f.cur = n
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.processed.Store(n.Seq)
}
