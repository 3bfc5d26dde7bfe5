package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

type annKey struct{}

// annotate stores the committer's name from ctx and the old values.
func annotate(ctx context.Context, ch []tree.Change) []byte {
	who, _ := ctx.Value(annKey{}).(string)
	b := []byte(who)
	for _, c := range ch {
		if c.Node.Config {
			b = append(b, '|')
			b = append(b, c.Old.String()...)
		}
	}
	return b
}

func liveLogged(c *Commit) LoggedCommit {
	l := LoggedCommit{Seq: c.Seq, Time: c.Time, Annotation: c.Annotation}
	for _, ch := range c.Changes {
		if ch.Node.Config {
			l.Changes = append(l.Changes, LoggedChange{Path: ch.Path(), Delete: ch.Op == tree.OpDelete, Val: ch.Val})
		}
	}
	return l
}

// The log replays every commit exactly as the change feed delivered it:
// same order, paths, values, deletes and annotation.
func TestReplayCommitsMatchesTheFeed(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testSchema(t), Options{Annotate: annotate, KeepLog: true})
	if err != nil {
		t.Fatal(err)
	}
	w := s.Watch()
	ctx := context.WithValue(context.Background(), annKey{}, "alice")
	var want []LoggedCommit
	commit := func(ops ...Op) {
		t.Helper()
		if _, err := s.Commit(ctx, ops); err != nil {
			t.Fatal(err)
		}
		c, err := w.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Annotation) == 0 {
			t.Fatal("config commit without annotation")
		}
		want = append(want, liveLogged(c))
	}
	commit(upd(t, route(1)+"/config/device", str("eth0")), upd(t, route(2)+"/config/device", str("eth1")))
	commit(upd(t, route(1)+"/config/device", str("eth9")), upd(t, route(1)+"/config/tags", str("a")))
	commit(del(t, route(2)))
	commit(upd(t, route(3)+"/config/device", str("eth3")))
	if got := want[1].Annotation; string(got) != "alice|eth0|" {
		t.Errorf("annotation of the update: %q (old values eth0 and an absent leaf)", got)
	}
	check := func(after uint64, s *Store) {
		t.Helper()
		var got []LoggedCommit
		if err := s.ReplayCommits(after, ^uint64(0), func(c LoggedCommit) error { got = append(got, c); return nil }); err != nil {
			t.Fatal(err)
		}
		var exp []LoggedCommit
		for _, c := range want {
			if c.Seq > after {
				exp = append(exp, c)
			}
		}
		if d := cmp.Diff(exp, got, cmp.Comparer(func(a, b tree.Value) bool { return a.Equal(b) })); d != "" {
			t.Errorf("replay after %d (-feed +log):\n%s", after, d)
		}
	}
	check(0, s)
	check(want[1].Seq, s)
	s.Close()
	s, err = Open(dir, testSchema(t), Options{KeepLog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(0, s)
}

// With KeepLog, compactions keep every segment holding a commit past the
// retention mark, across restarts; once the mark passes them they go.
func TestKeepLogRetainsUntilTheMark(t *testing.T) {
	dir := t.TempDir()
	o := Options{CompactBytes: 4 << 10, KeepLog: true, Annotate: annotate}
	s, err := Open(dir, testSchema(t), o)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := 0; i < 300; i++ {
		c := mustCommit(t, s, upd(t, route(i%50)+"/config/device", str(fmt.Sprint("eth", i))))
		seqs = append(seqs, c.Seq)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	mark := seqs[199]
	s.Retain(mark, []byte("note-200"))
	count := func(s *Store, after uint64) int {
		n := 0
		if err := s.ReplayCommits(after, ^uint64(0), func(LoggedCommit) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(s, 0); n != 300 {
		t.Fatalf("before the mark took effect: %d commits replayable, want 300", n)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, testSchema(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if seq, note := s.Retained(); seq != mark || string(note) != "note-200" {
		t.Fatalf("mark after restart: %d %q, want %d note-200", seq, note, mark)
	}
	if n := count(s, mark); n != 100 {
		t.Fatalf("after the mark: %d commits replayable, want 100", n)
	}
	if n := count(s, 0); n >= 300 {
		t.Errorf("compaction kept every segment (%d commits) though the mark released 200", n)
	}
	s.Close()

	// Without KeepLog the old behaviour: the snapshot replaces the log.
	dir2 := t.TempDir()
	s2, err := Open(dir2, testSchema(t), Options{CompactBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := 0; i < 300; i++ {
		mustCommit(t, s2, upd(t, route(i%50)+"/config/device", str(fmt.Sprint("eth", i))))
	}
	if err := s2.Compact(); err != nil {
		t.Fatal(err)
	}
	if n := count(s2, 0); n > 10 {
		t.Errorf("without KeepLog %d commits are still in the log after a compaction", n)
	}
}
