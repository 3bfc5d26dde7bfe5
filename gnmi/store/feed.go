package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Commit is one committed transaction as the change feed delivers it.
// Changes are the net per-leaf updates and deletes in a stable order;
// consumers must treat them as read-only.
type Commit struct {
	Seq     uint64
	Time    time.Time
	State   bool // a state commit (reconcilers), not durable
	Changes []tree.Change
	// Annotation is what Options.Annotate returned for a config commit,
	// stored in its log record.
	Annotation []byte
}

// ErrResync tells a watcher that it fell so far behind that commits it
// has not read were dropped: it must re-read the tree (Store.ReadWatch)
// and continue from there. A watcher is never silently skipped ahead.
var ErrResync = errors.New("watcher fell behind the change feed: resync")

// ErrClosed is returned by a watcher whose store was closed.
var ErrClosed = errors.New("store closed")

// feed keeps the most recent commits in order so that watchers read at
// their own pace. Publishing never waits for a watcher: when the retained
// changes exceed the budget the oldest commits are dropped and a watcher
// that still needed them gets ErrResync.
type feed struct {
	mu      sync.Mutex
	commits []*Commit // commits[i].Seq == first+i
	first   uint64    // seq of commits[0]
	next    uint64    // seq the next published commit will have
	leaves  int       // changes retained in commits
	budget  int       // max changes retained (the newest commit is always kept)
	wake    chan struct{}
	closed  bool
}

func newFeed(next uint64, budget int) *feed {
	return &feed{first: next, next: next, budget: budget, wake: make(chan struct{})}
}

func (f *feed) publish(c *Commit) {
	f.mu.Lock()
	f.commits = append(f.commits, c)
	f.next = c.Seq + 1
	f.leaves += len(c.Changes)
	for len(f.commits) > 1 && (f.leaves > f.budget || len(f.commits) > 65536) {
		f.leaves -= len(f.commits[0].Changes)
		f.commits[0] = nil
		f.commits = f.commits[1:]
		f.first++
	}
	if cap(f.commits) > 4*len(f.commits)+64 {
		f.commits = append([]*Commit(nil), f.commits...)
	}
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.wake)
	}
}

// Watcher reads the change feed from a position onwards. It is owned by
// one goroutine.
type Watcher struct {
	f    *feed
	next uint64
}

// Next returns the next commit, waiting for one if needed. It returns
// ErrResync if that commit was already dropped, ErrClosed when the store
// closes, or the context's error.
func (w *Watcher) Next(ctx context.Context) (*Commit, error) {
	for {
		w.f.mu.Lock()
		if w.next < w.f.first {
			w.f.mu.Unlock()
			return nil, ErrResync
		}
		if w.next < w.f.next {
			c := w.f.commits[w.next-w.f.first]
			w.next++
			w.f.mu.Unlock()
			return c, nil
		}
		if w.f.closed {
			w.f.mu.Unlock()
			return nil, ErrClosed
		}
		wake := w.f.wake
		w.f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ready returns a channel that is closed when a commit the watcher has not
// read may be available (or the store closed), for select loops.
func (w *Watcher) Ready() <-chan struct{} {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.next < w.f.next || w.f.closed || w.next < w.f.first {
		c := make(chan struct{})
		close(c)
		return c
	}
	return w.f.wake
}

// Pos returns the sequence number of the next commit the watcher reads.
func (w *Watcher) Pos() uint64 { return w.next }

// TryNext returns the next commit if one is available, without waiting.
func (w *Watcher) TryNext() (*Commit, bool, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.next < w.f.first {
		return nil, false, ErrResync
	}
	if w.next < w.f.next {
		c := w.f.commits[w.next-w.f.first]
		w.next++
		return c, true, nil
	}
	if w.f.closed {
		return nil, false, ErrClosed
	}
	return nil, false, nil
}
