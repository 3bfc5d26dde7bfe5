package store

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// retained is how many commits the feed holds.
func retained(s *Store) int {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return len(s.feed.commits)
}

// TestFeedDropsWhatEveryWatcherRead: the feed keeps a commit while a live
// watcher has not read it, and lets it go once all have, so a bulk
// commit's changes do not outlive its readers.
func TestFeedDropsWhatEveryWatcherRead(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a, b := s.Watch(), s.Watch()
	c1 := mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth0")))
	c2 := mustCommit(t, s, upd(t, route(2)+"/config/device", str("eth0")))
	if n := retained(s); n != 2 {
		t.Fatalf("feed holds %d commits before any read, want 2", n)
	}
	for _, want := range []*Commit{c1, c2} {
		if got, err := a.Next(ctx); err != nil || got != want {
			t.Fatalf("a read %v, %v; want seq %d", got, err, want.Seq)
		}
	}
	if n := retained(s); n != 2 {
		t.Fatalf("feed holds %d commits while b has read none, want 2", n)
	}
	if got, err := b.Next(ctx); err != nil || got != c1 {
		t.Fatalf("b read %v, %v; want seq %d", got, err, c1.Seq)
	}
	if n := retained(s); n != 1 {
		t.Fatalf("feed holds %d commits once both read the first, want 1", n)
	}
	if got, err := b.Next(ctx); err != nil || got != c2 {
		t.Fatalf("b read %v, %v; want seq %d", got, err, c2.Seq)
	}
	if n := retained(s); n != 0 {
		t.Fatalf("feed holds %d commits every watcher read, want 0", n)
	}
	// Both go on reading what comes next.
	c3 := mustCommit(t, s, upd(t, route(3)+"/config/device", str("eth0")))
	for _, w := range []*Watcher{a, b} {
		if got, err := w.Next(ctx); err != nil || got != c3 {
			t.Fatalf("read %v, %v; want seq %d", got, err, c3.Seq)
		}
	}
	// With no watcher at all, nothing is kept, and a new watcher starts
	// after the last commit.
	a, b = nil, nil
	runtime.GC()
	mustCommit(t, s, upd(t, route(4)+"/config/device", str("eth0")))
	w := s.Watch()
	c5 := mustCommit(t, s, upd(t, route(5)+"/config/device", str("eth0")))
	if got, err := w.Next(ctx); err != nil || got != c5 {
		t.Fatalf("new watcher read %v, %v; want seq %d", got, err, c5.Seq)
	}
}

// TestFeedReleasesDroppedWatcher: a watcher its owner drops without
// reading on stops holding commits once the collector finds it gone.
func TestFeedReleasesDroppedWatcher(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.Watch()
	mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth0")))
	if n := retained(s); n != 1 {
		t.Fatalf("feed holds %d commits for an unread watcher, want 1", n)
	}
	runtime.KeepAlive(w)
	w = nil
	// The cleanup runs on its own goroutine after a collection: collect
	// and yield until it has, bounded by a deadline rather than a sleep.
	deadline := time.Now().Add(30 * time.Second)
	for retained(s) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("feed still holds the commit of a dropped watcher")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestReadWatchKeepsCommitsDuringRead: commits made while a ReadWatch's
// function reads its snapshot reach its watcher, even with no other
// watcher holding them in the feed.
func TestReadWatchKeepsCommitsDuringRead(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var during *Commit
	w, err := s.ReadWatch(func(_ *tree.Tree, seq uint64) error {
		during = mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth0")))
		if during.Seq != seq+1 {
			t.Errorf("commit during the read has seq %d, want %d", during.Seq, seq+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.Next(context.Background())
	if errors.Is(err, ErrResync) {
		t.Fatal("the commit made during the read was dropped before the watcher was placed")
	}
	if err != nil || got != during {
		t.Fatalf("read %v, %v; want seq %d", got, err, during.Seq)
	}
}
