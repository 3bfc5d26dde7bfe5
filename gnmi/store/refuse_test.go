package store

import (
	"context"
	"errors"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// TestBulkCommitRefusals: a commit of a few routes and a bulk one (its
// record encoded while the validators and the check decide) decide the
// same. Any validator's refusal refuses, the validators' errors joined
// in the order they were added and ahead of the check's; the check's
// refusal alone comes back as it is. A refused commit leaves the tree,
// the log and the feed as they were; an allowed one carries the
// annotation of its changes, and the check saw each leaf as it was.
func TestBulkCommitRefusals(t *testing.T) {
	errA, errB, errCheck := errors.New("refused by a"), errors.New("refused by b"), errors.New("refused by the check")
	for _, n := range []int{10, splitEncodeMin/5 + 1000} {
		dir := t.TempDir()
		s, err := Open(dir, kedgeSchema(t), Options{Annotate: annotate, KeepLog: true})
		if err != nil {
			t.Fatal(err)
		}
		refuse := map[string]bool{}
		s.AddValidator("/kedge/routes", func(*tree.Tree, []tree.Change) error {
			if refuse["a"] {
				return errA
			}
			return nil
		})
		s.AddValidator("/kedge/pods", func(*tree.Tree, []tree.Change) error {
			t.Error("a validator of another prefix ran")
			return nil
		})
		s.AddValidator("", func(*tree.Tree, []tree.Change) error {
			if refuse["b"] {
				return errB
			}
			return nil
		})
		var before []string // what the check saw of the first route's device
		check := func(p Proposed) error {
			for _, c := range p.Changes {
				if c.Node.Path == "/kedge/routes/route/config/device" {
					before = append(before, p.Before(c.In, c.Node).String()+"->"+p.Tree.Resolve(c.In).Leaf(c.Node).String())
					break
				}
			}
			if refuse["check"] {
				return errCheck
			}
			return nil
		}
		ctx := context.WithValue(context.Background(), annKey{}, "alice")
		op := Op{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(string(bulkRoutesJSON(n)))}
		w := s.Watch()
		tree0, seq, log0 := dump(s), s.Seq(), logRecords(t, dir)
		for _, c := range []struct {
			refuse []string
			want   error  // errors.Is
			text   string // the whole error
		}{
			{[]string{"a"}, errA, "refused by a"},
			{[]string{"b"}, errB, "refused by b"},
			{[]string{"check"}, errCheck, "refused by the check"},
			{[]string{"a", "check"}, errA, "refused by a"},
			{[]string{"b", "check"}, errB, "refused by b"},
			{[]string{"a", "b"}, errA, "refused by a\nrefused by b"},
			{[]string{"a", "b", "check"}, errB, "refused by a\nrefused by b"},
		} {
			clear(refuse)
			for _, r := range c.refuse {
				refuse[r] = true
			}
			_, err := s.CommitWith(ctx, []Op{op}, CommitOptions{Check: check})
			if !errors.Is(err, c.want) || err.Error() != c.text {
				t.Fatalf("%d routes, refused by %v: got %v, want %q", n, c.refuse, err, c.text)
			}
			if c.refuse[0] == "check" && err != errCheck {
				t.Fatalf("%d routes: the check's error came back as %#v, not as it is", n, err)
			}
			if dump(s) != tree0 || s.Seq() != seq || logRecords(t, dir) != log0 {
				t.Fatalf("%d routes, refused by %v: the refused commit changed the tree or the log", n, c.refuse)
			}
			if got, ok, _ := w.TryNext(); ok {
				t.Fatalf("%d routes, refused by %v: the feed published commit %d", n, c.refuse, got.Seq)
			}
		}
		clear(refuse)
		before = nil
		c, err := s.CommitWith(ctx, []Op{op}, CommitOptions{Check: check})
		if err != nil {
			t.Fatalf("%d routes: %v", n, err)
		}
		if got, want := string(c.Annotation), string(annotate(ctx, c.Changes)); got != want {
			t.Fatalf("%d routes: annotation %.60q..., want %.60q...", n, got, want)
		}
		if len(before) != 1 || before[0] != "->rtA" {
			t.Fatalf("%d routes: the check saw %q", n, before)
		}
		if logRecords(t, dir) != log0+1 {
			t.Fatalf("%d routes: the commit logged %d records", n, logRecords(t, dir)-log0)
		}
		if got, ok, _ := w.TryNext(); !ok || got != c {
			t.Fatalf("%d routes: the feed did not publish the commit", n)
		}
		s.Close()
	}
}

// logRecords counts the records in the log under dir.
func logRecords(t *testing.T, dir string) int {
	ids, err := wal.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range ids {
		if err := wal.Records(dir, id, func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}
