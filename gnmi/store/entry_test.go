package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

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
	ca1 := mustCommit(t, a, Entry(routeEntry(r1), leaves()...), Entry(routeEntry(r2), upd(t, r2+"/config/device", str("eth1"))))
	cb1 := mustCommit(t, b, append(leaves(), upd(t, r2+"/config/device", str("eth1")))...)
	ca2 := mustCommit(t, a, Entry(routeEntry(r1), second()...))
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

	// Refused: a value out of range, a leaf outside the entry, an
	// operation of another kind among its leaves. Nothing changes.
	seq := a.Seq()
	for _, bad := range []Op{
		Entry(routeEntry(r1), upd(t, r1+"/config/device", str("eth5")), upd(t, r1+"/config/metric", uintv(5000))),
		Entry(routeEntry(r1), upd(t, r1+"/config/device", str("eth5")), upd(t, r2+"/config/device", str("eth5"))),
		Entry(routeEntry(r1), upd(t, r1+"/config/device", str("eth5")), Entry(routeEntry(r1)), upd(t, r1+"/config/metric", uintv(1))),
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
	if _, err := a2.CommitState(ctx, []Op{Entry(routeEntry(r1), upd(t, r1+"/state/status", str("installed")))}); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.CommitState(ctx, []Op{Entry(routeEntry(route(9)), upd(t, route(9)+"/state/status", str("installed")))}); !errors.Is(err, tree.ErrNotFound) {
		t.Fatalf("state of an absent entry: err %v, want %v", err, tree.ErrNotFound)
	}
}
