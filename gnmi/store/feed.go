package store

import (
	"context"
	"errors"
	"runtime"
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

	// nodes holds the distinct schema nodes of Changes, computed once by
	// the first watcher that asks (Nodes, touches.go); the feed sets it
	// when it publishes the commit. A pointer, so that a Commit copied by
	// value (tests do) copies no lock.
	nodes *nodeSet
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
//
// Nor does it keep a commit no watcher can still read: it counts its live
// watchers by position, and once every one of them has read a commit
// (and no ReadWatch is between its snapshot and its watcher) the commit
// goes. A new watcher starts after the last commit, so it never needs an
// older one. After a bulk Set of 100,000 routes this drops the commit's
// 600,000 changes (about 400 B a route) as soon as the last subscriber
// has read them, instead of keeping them until a million more changes
// push them out. A watcher its owner drops without reading on is
// unregistered when the collector finds it unreachable (runtime.AddCleanup);
// until then it keeps what it has not read, within the budget.
type feed struct {
	mu      sync.Mutex
	commits []*Commit // commits[i].Seq == first+i
	first   uint64    // seq of commits[0]
	next    uint64    // seq the next published commit will have
	leaves  int       // changes retained in commits
	budget  int       // max changes retained (the newest commit is always kept)
	wake    chan struct{}
	closed  bool
	// at counts the live watchers by the seq each reads next; pinned
	// counts ReadWatch calls that have not placed their watcher yet
	// (nothing is dropped for being read while one is pending).
	at     map[uint64]int
	pinned int
}

func newFeed(next uint64, budget int) *feed {
	return &feed{first: next, next: next, budget: budget, wake: make(chan struct{}), at: map[uint64]int{}}
}

func (f *feed) publish(c *Commit) {
	c.nodes = &nodeSet{}
	f.mu.Lock()
	f.commits = append(f.commits, c)
	f.next = c.Seq + 1
	f.leaves += len(c.Changes)
	for len(f.commits) > 1 && (f.leaves > f.budget || len(f.commits) > 65536) {
		f.drop()
	}
	f.dropRead()
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// drop removes the oldest retained commit (f.mu held).
func (f *feed) drop() {
	f.leaves -= len(f.commits[0].Changes)
	f.commits[0] = nil
	f.commits = f.commits[1:]
	f.first++
	if len(f.commits) == 0 {
		f.commits = nil
	} else if cap(f.commits) > 4*len(f.commits)+64 {
		f.commits = append([]*Commit(nil), f.commits...)
	}
}

// dropRead removes the oldest commits while no live watcher still has to
// read them (f.mu held).
func (f *feed) dropRead() {
	if f.pinned > 0 {
		return
	}
	for len(f.commits) > 0 && f.at[f.first] == 0 {
		f.drop()
	}
}

// place registers a watcher that reads seq next (f.mu held).
func (f *feed) place(seq uint64) *position {
	f.at[seq]++
	return &position{next: seq}
}

// move records that a watcher read the commit at p.next (f.mu held).
func (f *feed) move(p *position) {
	f.leave(p.next)
	p.next++
	f.at[p.next]++
	f.dropRead()
}

func (f *feed) leave(seq uint64) {
	if f.at[seq]--; f.at[seq] <= 0 {
		delete(f.at, seq)
	}
}

// release unregisters the watcher at p: its owner dropped it.
func (f *feed) release(p *position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leave(p.next)
	f.dropRead()
}

// position is where a watcher reads next; the feed counts positions, so
// a watcher's position lives apart from it (its cleanup must not reach
// the watcher).
type position struct{ next uint64 }

// newWatcher returns a watcher that reads seq next.
func (f *feed) newWatcher(seq uint64) *Watcher {
	f.mu.Lock()
	p := f.place(seq)
	f.mu.Unlock()
	w := &Watcher{f: f, pos: p}
	runtime.AddCleanup(w, f.release, p)
	return w
}

// pin keeps every commit published from now on until unpin: a ReadWatch
// pins before it loads its snapshot, so the commits after the snapshot
// are still there when its watcher is placed.
func (f *feed) pin() {
	f.mu.Lock()
	f.pinned++
	f.mu.Unlock()
}

func (f *feed) unpin() {
	f.mu.Lock()
	f.pinned--
	f.dropRead()
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
// one goroutine. The feed keeps the commits it has not read (within the
// budget) for as long as it is reachable.
type Watcher struct {
	f   *feed
	pos *position
}

// Next returns the next commit, waiting for one if needed. It returns
// ErrResync if that commit was already dropped, ErrClosed when the store
// closes, or the context's error.
func (w *Watcher) Next(ctx context.Context) (*Commit, error) {
	for {
		c, ok, err := w.TryNext()
		if ok || err != nil {
			return c, err
		}
		w.f.mu.Lock()
		wake := w.f.wake
		ready := w.pos.next < w.f.next || w.f.closed
		w.f.mu.Unlock()
		if ready {
			continue
		}
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
	if w.pos.next < w.f.next || w.f.closed || w.pos.next < w.f.first {
		c := make(chan struct{})
		close(c)
		return c
	}
	return w.f.wake
}

// Pos returns the sequence number of the next commit the watcher reads.
func (w *Watcher) Pos() uint64 {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.pos.next
}

// TryNext returns the next commit if one is available, without waiting.
func (w *Watcher) TryNext() (*Commit, bool, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.pos.next < w.f.first {
		return nil, false, ErrResync
	}
	if w.pos.next < w.f.next {
		c := w.f.commits[w.pos.next-w.f.first]
		w.f.move(w.pos)
		return c, true, nil
	}
	if w.f.closed {
		return nil, false, ErrClosed
	}
	return nil, false, nil
}
