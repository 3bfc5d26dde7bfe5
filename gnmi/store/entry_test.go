package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

type routeEntry string

func (r routeEntry) Elems() []*gpb.PathElem {
	e, err := tree.ParsePath(string(r))
	if err != nil {
		panic(err)
	}
	return e
}

// lw is op (an Update, Replace or Delete with a whole path) as a leaf
// write of Entry.
func lw(op Op) LeafWrite {
	return LeafWrite{keyed: op.Path, val: op.Val, del: op.Kind == OpDelete}
}

// lws is ops as leaf writes.
func lws(ops ...Op) []LeafWrite {
	out := make([]LeafWrite, len(ops))
	for i, op := range ops {
		out[i] = lw(op)
	}
	return out
}

func uintv(n uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
}

// An Entry operation commits what its leaves' operations commit, leaf for
// leaf, with the same log record, so a log written with it replays as
// any other (and older code reads it: the record has no new kind).
func TestEntryCommitsAsItsLeaves(t *testing.T) {
	ctx := context.Background()
	r1, r2 := route(1), route(2)
	leaves := func() []Op {
		return []Op{
			upd(t, r1+"/config/device", str("eth0")),
			upd(t, r1+"/config/metric", uintv(7)),
			{Kind: OpReplace, Path: path(t, r1+"/config/tags"), Val: str("x")},
		}
	}
	second := func() []Op {
		return []Op{upd(t, r1+"/config/metric", uintv(8)), del(t, r1+"/config/tags")}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := Open(dirA, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dirB, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ca1 := mustCommit(t, a, Entry(routeEntry(r1), lws(leaves()...)...), Entry(routeEntry(r2), lw(upd(t, r2+"/config/device", str("eth1")))))
	cb1 := mustCommit(t, b, append(leaves(), upd(t, r2+"/config/device", str("eth1")))...)
	ca2 := mustCommit(t, a, Entry(routeEntry(r1), lws(second()...)...))
	cb2 := mustCommit(t, b, second()...)
	for i, pair := range [][2]*Commit{{ca1, cb1}, {ca2, cb2}} {
		ra := encodeRecord(pair[0].Seq, 1, pair[0].Changes)
		rb := encodeRecord(pair[1].Seq, 1, pair[1].Changes)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("commit %d: the Entry commit's log record differs from the leaf operations':\n%x\n%x", i+1, ra, rb)
		}
	}
	want := dump(a)
	if got := dump(b); got != want {
		t.Fatalf("trees differ:\nEntry:\n%s\nleaves:\n%s", want, got)
	}

	// Refused: a value out of range, a leaf outside the entry, a leaf
	// write with no path. Nothing changes.
	seq := a.Seq()
	for _, bad := range []Op{
		Entry(routeEntry(r1), lws(upd(t, r1+"/config/device", str("eth5")), upd(t, r1+"/config/metric", uintv(5000)))...),
		Entry(routeEntry(r1), lws(upd(t, r1+"/config/device", str("eth5")), upd(t, r2+"/config/device", str("eth5")))...),
		Entry(routeEntry(r1), lw(upd(t, r1+"/config/device", str("eth5"))), LeafWrite{}, lw(upd(t, r1+"/config/metric", uintv(1)))),
	} {
		_, err := a.Commit(ctx, []Op{upd(t, r2+"/config/metric", uintv(3)), bad})
		var te *tree.Error
		if !errors.As(err, &te) {
			t.Fatalf("bad entry: err %v, want a *tree.Error", err)
		}
		if a.Seq() != seq || dump(a) != want {
			t.Fatalf("a refused Entry changed the store (seq %d, was %d):\n%s", a.Seq(), seq, dump(a))
		}
	}

	// Replay after a restart.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2, err := Open(dirA, testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if got := dump(a2); got != want {
		t.Fatalf("replayed tree:\n%s\nwant:\n%s", got, want)
	}
	if a2.Seq() != seq {
		t.Fatalf("replayed seq %d, want %d", a2.Seq(), seq)
	}
	// And the state writer's kind of Entry on the replayed store.
	if _, err := a2.CommitState(ctx, []Op{Entry(routeEntry(r1), lw(upd(t, r1+"/state/status", str("installed"))))}); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.CommitState(ctx, []Op{Entry(routeEntry(route(9)), lw(upd(t, route(9)+"/state/status", str("installed"))))}); !errors.Is(err, tree.ErrNotFound) {
		t.Fatalf("state of an absent entry: err %v, want %v", err, tree.ErrNotFound)
	}
}

// Leaves set through typed paths of the entry path value Entry is given
// reach the tree relative to the entry, and the others whole; either way
// the commit and its log record are the leaf operations' own, and a bad
// leaf changes nothing.
func TestEntryRelativeLeavesCommitAsWhole(t *testing.T) {
	ctx := context.Background()
	aft := kedgepath.Root().Kedge().Aft()
	sc := aft.Sessions().Session("s1").Config()
	const pfx, md = "10.0.0.1/32", "bWQ="
	// rel sets the leaves through e itself, whole through another value
	// of the same entry path (its keyed element a different pointer).
	rel := func() []Op {
		e := aft.Ipv4Entries().Ipv4Entry(pfx)
		c := e.Config()
		return []Op{Entry(e, Set(c.Prefix(), pfx), Set(c.NextHopGroup(), 7), Set(c.Session(), "s1"), Set(c.Metadata(), md))}
	}
	whole := func() []Op {
		c := aft.Ipv4Entries().Ipv4Entry(pfx).Config()
		return []Op{Entry(aft.Ipv4Entries().Ipv4Entry(pfx), Set(c.Prefix(), pfx), Set(c.NextHopGroup(), 7),
			Set(c.Session(), "s1"), Set(c.Metadata(), md))}
	}
	leaves := func() []Op {
		c := aft.Ipv4Entries().Ipv4Entry(pfx).Config()
		return []Op{Update(c.Prefix(), pfx), Update(c.NextHopGroup(), 7), Update(c.Session(), "s1"), Update(c.Metadata(), md)}
	}
	for how, want := range map[string]bool{"rel": true, "whole": false} {
		ops := map[string]func() []Op{"rel": rel, "whole": whole}[how]()
		for _, w := range ops[0].Leaves {
			if w.Relative != want || want && len(w.Path) != 2 {
				t.Fatalf("%s: leaf %v relative %v, want %v", how, w.Path, w.Relative, want)
			}
		}
	}
	e := aft.Ipv4Entries().Ipv4Entry(pfx)
	second := []func() []Op{
		func() []Op { return []Op{Entry(e, Set(e.Config().NextHopGroup(), 8), Unset(e.Config().Metadata()))} },
		func() []Op {
			o := aft.Ipv4Entries().Ipv4Entry(pfx)
			return []Op{Entry(o, Set(e.Config().NextHopGroup(), 8), Unset(e.Config().Metadata()))}
		},
		func() []Op { return []Op{Update(e.Config().NextHopGroup(), 8), Delete(e.Config().Metadata())} },
	}
	var stores []*Store
	var recs [][]byte
	for i, first := range []func() []Op{rel, whole, leaves} {
		s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mustCommit(t, s, Update(sc.Id(), "s1"), Update(sc.Identity(), "test"))
		c1 := mustCommit(t, s, first()...)
		c2 := mustCommit(t, s, second[i]()...)
		recs = append(recs, append(encodeRecord(c1.Seq, 1, c1.Changes), encodeRecord(c2.Seq, 1, c2.Changes)...))
		stores = append(stores, s)
	}
	for i, name := range []string{"relative", "whole"} {
		if !bytes.Equal(recs[i], recs[2]) {
			t.Fatalf("Entry with %s leaves: log records differ from the leaf operations':\n%x\n%x", name, recs[i], recs[2])
		}
		if got, want := dump(stores[i]), dump(stores[2]); got != want {
			t.Fatalf("Entry with %s leaves: tree\n%s\nwant\n%s", name, got, want)
		}
	}

	// Refused, nothing changed: a key mirror differing from the key, a
	// leaf of another entry, an empty leaf write.
	s := stores[0]
	want, seq := dump(s), s.Seq()
	o := aft.Ipv4Entries().Ipv4Entry("10.0.0.2/32")
	for _, bad := range []Op{
		Entry(e, Set(e.Config().NextHopGroup(), 9), Set(e.Config().Prefix(), "10.0.0.2/32")),
		Entry(e, Set(e.Config().NextHopGroup(), 9), Set(o.Config().NextHopGroup(), 9)),
		Entry(e, Set(e.Config().NextHopGroup(), 9), LeafWrite{}),
	} {
		if _, err := s.Commit(ctx, []Op{bad}); err == nil {
			t.Fatalf("bad Entry %v committed", bad.Leaves)
		}
		if s.Seq() != seq || dump(s) != want {
			t.Fatalf("a refused Entry changed the store:\n%s", dump(s))
		}
	}
}

// TestEntryKeyTextNotCanonical: an Entry at a next-hop group named by a
// key text that is not the key's canonical form ("07" for 7) writes the
// group that exists, as Update of the same whole paths does, and one
// named by canonical text that no group holds creates it: the single key's
// text is looked up before it is parsed, and parsed when not found.
func TestEntryKeyTextNotCanonical(t *testing.T) {
	s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const g7, g07, g8 = "/kedge/aft/next-hop-groups/next-hop-group[id=7]", "/kedge/aft/next-hop-groups/next-hop-group[id=07]", "/kedge/aft/next-hop-groups/next-hop-group[id=8]"
	mustCommit(t, s, upd(t, g7+"/config/id", uintv(7)))
	c := mustCommit(t, s, Entry(routeEntry(g07), lw(upd(t, g07+"/config/backup-next-hop-group", uintv(9)))))
	if len(c.Changes) != 1 || c.Changes[0].Path() != g7+"/config/backup-next-hop-group" {
		t.Fatalf("Entry at %s changed %v, want group 7's backup-next-hop-group", g07, c.Changes)
	}
	c = mustCommit(t, s, Entry(routeEntry(g8), lw(upd(t, g8+"/config/backup-next-hop-group", uintv(9)))))
	if len(c.Changes) != 3 { // id, config/id, backup-next-hop-group
		t.Fatalf("Entry at %s made %d changes, want 3: %v", g8, len(c.Changes), c.Changes)
	}
	var n int
	if err := s.Read(func(tr *tree.Tree) error {
		n = tr.Root().Sub("kedge").Sub("aft").Sub("next-hop-groups").Len("next-hop-group")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d next-hop groups, want 2 (7 and 8)", n)
	}
}
