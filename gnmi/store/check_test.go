package store

import (
	"context"
	"errors"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// A Check sees the commit's net changes, the tree as it will be and each
// leaf as it was; when it refuses, nothing changes, in memory or on disk,
// and its error comes back as it is.
func TestCommitCheck(t *testing.T) {
	dir := t.TempDir()
	schema := testSchema(t)
	s, err := Open(dir, schema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := "/top/routes/route[prefix=10.1.0.0/16][table=1]"
	mustCommit(t, s, upd(t, r+"/config", js(`{"device":"eth1"}`)))
	device := schema.Find("/top/routes/route/config/device")
	before, seq := dump(s), s.Seq()

	errNo := errors.New("refused")
	var saw []string
	refuse := func(p Proposed) error {
		for _, c := range p.Changes {
			var after tree.Value // zero where the commit deletes the instance
			if in := p.Tree.Resolve(c.In); in != nil {
				after = in.Leaf(c.Node)
			}
			saw = append(saw, c.Path()+" "+p.Before(c.In, c.Node).String()+"->"+after.String())
		}
		return errNo
	}
	_, err = s.CommitWith(context.Background(), []Op{upd(t, r+"/config/device", str("eth2"))}, CommitOptions{Check: refuse})
	if !errors.Is(err, errNo) {
		t.Fatalf("refused commit: %v", err)
	}
	if len(saw) != 1 || saw[0] != r+"/config/device eth1->eth2" {
		t.Fatalf("check saw %q", saw)
	}
	if dump(s) != before || s.Seq() != seq {
		t.Fatalf("a refused commit changed the tree:\n%s", dump(s))
	}
	// An allowing check lets it through; commits without one are not
	// checked, nor are state commits.
	allow := func(Proposed) error { return nil }
	if _, err := s.CommitWith(context.Background(), []Op{upd(t, r+"/config/device", str("eth3"))}, CommitOptions{Check: allow}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitState(context.Background(), []Op{upd(t, r+"/state/status", str("installed"))}); err != nil {
		t.Fatal(err)
	}
	// A refused check with an undo record stores no undo either.
	_, err = s.CommitWith(context.Background(), []Op{del(t, r)}, CommitOptions{Check: refuse, UndoKey: "k",
		Undo: func([]Op) ([]byte, error) { return []byte("undo"), nil }})
	if !errors.Is(err, errNo) {
		t.Fatalf("refused undoable commit: %v", err)
	}
	if m, _ := s.GetMeta("k"); m != nil {
		t.Fatalf("refused commit stored its undo %q", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, schema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var got string
	s2.Read(func(tr *tree.Tree) error {
		tg, _, _ := tr.Lookup(path(t, r+"/config"))
		got = tg.In.Leaf(device).Str()
		return nil
	})
	if got != "eth3" {
		t.Fatalf("after restart device = %q, want eth3 (the refused commits must not be on disk)", got)
	}
}
