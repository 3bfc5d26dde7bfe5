package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func TestRestoreReplaysTreeAndSequence(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, upd(t, route(1)+"/config", js(`{"device":"eth0","metric":7,"extra":["10.0.0.0/8"]}`)))
	mustCommit(t, s, upd(t, route(2)+"/config/device", str("eth1")))
	mustCommit(t, s, upd(t, "/top/devices/device[name=sw1]/config/address", str("192.0.2.1")))
	mustCommit(t, s, upd(t, route(2)+"/config/dev-ref", str("sw1")))
	mustCommit(t, s, del(t, route(1)))
	mustCommit(t, s, Op{Kind: OpReplace, Path: path(t, route(2)+"/config"), Val: js(`{"device":"eth2"}`)})
	// Delete and re-create one entry in a single commit.
	mustCommit(t, s, del(t, route(3)), upd(t, route(3)+"/config/device", str("eth3")))
	mustCommit(t, s, del(t, route(3)), upd(t, route(3)+"/config/metric", js(`9`)))
	if _, err := s.CommitState(context.Background(), []Op{upd(t, route(2)+"/state/status", str("installed"))}); err != nil {
		t.Fatal(err)
	}
	want := dump(s)
	wantSeq := s.Seq()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// State is not durable: drop it from the expectation.
	var wantCfg []string
	for _, l := range strings.Split(want, "\n") {
		if !strings.Contains(l, "/state/") {
			wantCfg = append(wantCfg, l)
		}
	}
	if got := dump(s2); got != strings.Join(wantCfg, "\n") {
		t.Fatalf("restored tree:\n%s\nwant:\n%s", got, strings.Join(wantCfg, "\n"))
	}
	// The last durable commit was seq wantSeq-1 (the state commit is not
	// durable); new commits continue after the durable sequence.
	if got := s2.Seq(); got != wantSeq-1 {
		t.Fatalf("restored seq %d, want %d", got, wantSeq-1)
	}
}

func TestRejectedCommitLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth0")))
	w := s.Watch()
	before, seq := dump(s), s.Seq()
	_, err = s.Commit(context.Background(), []Op{
		upd(t, route(2)+"/config/device", str("eth1")),
		upd(t, route(1)+"/config/metric", js(`100000`)),
	})
	if !errors.Is(err, tree.ErrBadValue) {
		t.Fatalf("err = %v", err)
	}
	s.AddValidator("/top/routes", func(_ *tree.Tree, ch []tree.Change) error {
		for _, c := range ch {
			if c.Node.Name == "device" && c.Val.Str() == "lo" {
				return errors.New("routes may not point at lo")
			}
		}
		return nil
	})
	if _, err := s.Commit(context.Background(), []Op{upd(t, route(4)+"/config/device", str("lo"))}); err == nil || !strings.Contains(err.Error(), "lo") {
		t.Fatalf("semantic validator: %v", err)
	}
	if dump(s) != before || s.Seq() != seq {
		t.Fatal("rejected commit changed the tree or sequence")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if c, err := w.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rejected commit reached the feed: %v %v", c, err)
	}
	s.Close()
	s2, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if dump(s2) != before {
		t.Fatal("rejected commit reached the disk")
	}
}

func TestFeedOrderAndResync(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{FeedBudget: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fast := s.Watch()
	slow := s.Watch()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		c := mustCommit(t, s, upd(t, route(1)+"/config/tags", str(itoa(i))))
		got, err := fast.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != c {
			t.Fatalf("fast watcher got seq %d, want %d", got.Seq, c.Seq)
		}
	}
	// slow has read nothing and the budget kept only the last commits.
	if _, err := slow.Next(ctx); !errors.Is(err, ErrResync) {
		t.Fatalf("slow watcher: %v, want ErrResync", err)
	}
	// Resync: read the tree and continue from there without a gap.
	var sawSeq uint64
	var tags string
	w, err := s.ReadWatch(func(tr *tree.Tree, seq uint64) error {
		sawSeq = seq
		tgt, _, err := tr.Lookup(path(t, route(1)+"/config/tags"))
		tags = tgt.In.Leaf(tgt.Node).Str()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tags != "19" {
		t.Fatalf("resync read tags %q", tags)
	}
	c := mustCommit(t, s, upd(t, route(1)+"/config/tags", str("20")))
	got, err := w.Next(ctx)
	if err != nil || got.Seq != sawSeq+1 || got != c {
		t.Fatalf("after resync: %v %v", got, err)
	}
	if n := len(got.Changes); n != 1 || got.Changes[0].Path() != route(1)+"/config/tags" {
		t.Fatalf("changes %v", got.Changes)
	}
}

func TestCompactionThenRestore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testSchema(t), Options{CompactBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		mustCommit(t, s, upd(t, route(i)+"/config/device", str("eth"+itoa(i%4))))
		if err := s.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, s, del(t, route(7)))
	want, seq := dump(s), s.Seq()
	s.Close()
	s2, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if dump(s2) != want || s2.Seq() != seq {
		t.Fatalf("after compaction: seq %d want %d; tree equal %v", s2.Seq(), seq, dump(s2) == want)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Open(dir, testSchema(t), Options{})
		done <- err
	}()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}
