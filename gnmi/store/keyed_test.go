package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// TestKeyedCommitsAsLeaves: a Keyed operation (the entry named by its
// typed key, its leaves relative to it) commits what the leaves' Update
// and Delete operations do, with a byte-identical log record, for an entry
// created and then changed; and one the tree refuses (a key that is not a
// prefix, a leaf of another entry, an empty leaf write) changes nothing.
func TestKeyedCommitsAsLeaves(t *testing.T) {
	ctx := context.Background()
	aft := kedgepath.Root().Kedge().Aft()
	sc := aft.Sessions().Session("s1").Config()
	const pfx, md = "10.0.0.1/32", "bWQ="
	below := aft.Ipv4Entries().Ipv4EntryBelow().Config()
	e := aft.Ipv4Entries().Ipv4Entry(pfx)
	keyed := [2]func() []Op{
		func() []Op {
			return []Op{Keyed(aft.Ipv4Entries().Ipv4EntryRef(pfx), Set(below.Prefix(), pfx), Set(below.NextHopGroup(), 7),
				Set(below.Session(), "s1"), Set(below.Metadata(), md))}
		},
		func() []Op {
			// A leaf path with a keyed part is passed whole.
			return []Op{Keyed(aft.Ipv4Entries().Ipv4EntryRef(pfx), Set(below.NextHopGroup(), 8), Unset(e.Config().Metadata()))}
		},
	}
	leaves := [2]func() []Op{
		func() []Op {
			c := e.Config()
			return []Op{Update(c.Prefix(), pfx), Update(c.NextHopGroup(), 7), Update(c.Session(), "s1"), Update(c.Metadata(), md)}
		},
		func() []Op { return []Op{Update(e.Config().NextHopGroup(), 8), Delete(e.Config().Metadata())} },
	}
	if w := keyed[0]()[0].Leaves; !w[0].Relative || len(w[0].Path) != 2 {
		t.Fatalf("a Below leaf reaches the tree as %v (relative %v), want its 2 elements below the entry", w[0].Path, w[0].Relative)
	}
	if w := keyed[1]()[0].Leaves; w[1].Relative {
		t.Fatalf("a leaf with a keyed part reaches the tree relative: %v", w[1].Path)
	}
	var stores []*Store
	var recs [][]byte
	for _, ops := range [][2]func() []Op{keyed, leaves} {
		s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mustCommit(t, s, Update(sc.Id(), "s1"), Update(sc.Identity(), "test"))
		c1 := mustCommit(t, s, ops[0]()...)
		c2 := mustCommit(t, s, ops[1]()...)
		recs = append(recs, append(encodeRecord(c1.Seq, 1, c1.Changes), encodeRecord(c2.Seq, 1, c2.Changes)...))
		stores = append(stores, s)
	}
	if !bytes.Equal(recs[0], recs[1]) {
		t.Fatalf("Keyed: log records differ from the leaf operations':\n%x\n%x", recs[0], recs[1])
	}
	if got, want := dump(stores[0]), dump(stores[1]); got != want {
		t.Fatalf("Keyed: tree\n%s\nwant\n%s", got, want)
	}

	s := stores[0]
	want, seq := dump(s), s.Seq()
	o := aft.Ipv4Entries().Ipv4Entry("10.0.0.2/32")
	for _, bad := range []struct {
		op   Op
		want error
	}{
		{Keyed(aft.Ipv4Entries().Ipv4EntryRef("10.0.0.300"), Set(below.NextHopGroup(), 9)), tree.ErrBadValue},
		{Keyed(aft.Ipv4Entries().Ipv4EntryRef(pfx), Set(below.NextHopGroup(), 9), Set(o.Config().NextHopGroup(), 9)), tree.ErrBadPath},
		{Keyed(aft.Ipv4Entries().Ipv4EntryRef(pfx), Set(below.NextHopGroup(), 9), LeafWrite{}), tree.ErrBadPath},
	} {
		if _, err := s.Commit(ctx, []Op{bad.op}); !errors.Is(err, bad.want) {
			t.Fatalf("bad Keyed %v: err %v, want %v", bad.op.Leaves, err, bad.want)
		}
		if s.Seq() != seq || dump(s) != want {
			t.Fatalf("a refused Keyed changed the store:\n%s", dump(s))
		}
	}
}
