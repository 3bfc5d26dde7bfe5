package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
)

// TestKeyedRunCommitsAsLeaves: commits of many Keyed operations into one
// list (the IPv4 entries, their leaf paths shared from entry to entry as
// a bulk writer shares them), mixed with entries of two other lists,
// deletes of entries written before and their writing again, a changed
// value among repeated ones and an unset leaf, commit what the same
// writes as Update and Delete operations do: byte-identical log records
// and the same tree; and a state commit of a status for every entry
// (installed, now and then withheld with a reason) the same changes and
// tree as its leaf writes.
func TestKeyedRunCommitsAsLeaves(t *testing.T) {
	ctx := context.Background()
	aft := kedgepath.Root().Kedge().Aft()
	v4, v6, nhgs := aft.Ipv4Entries(), aft.Ipv6Entries(), aft.NextHopGroups()
	below4, below6 := v4.Ipv4EntryBelow().Config(), v6.Ipv6EntryBelow().Config()
	belowNHG := nhgs.NextHopGroupBelow().Config()
	st4 := v4.Ipv4EntryBelow().State()
	sc := aft.Sessions().Session("s1").Config()
	pfx := func(i int) string { return fmt.Sprintf("10.2.%d.%d/32", i/256, i%256) }

	// run returns a commit's operations, keyed or leaf by leaf.
	run := func(round int, keyed bool) []Op {
		var ops []Op
		for i := range 300 {
			p := pfx(i + 100*round)
			nhg := uint64(1)
			if i%17 == 5 {
				nhg = uint64(i)
			}
			e := v4.Ipv4Entry(p)
			switch {
			case keyed && round == 1 && i%11 == 0:
				ops = append(ops, Keyed(v4.Ipv4EntryRef(p), Set(below4.NextHopGroup(), nhg), Set(below4.Session(), "s1"), Unset(below4.Metadata())))
			case keyed:
				ops = append(ops, Keyed(v4.Ipv4EntryRef(p), Set(below4.NextHopGroup(), nhg), Set(below4.Session(), "s1"), Set(below4.Metadata(), "bWQ=")))
			case round == 1 && i%11 == 0:
				ops = append(ops, Update(e.Config().NextHopGroup(), nhg), Update(e.Config().Session(), "s1"), Delete(e.Config().Metadata()))
			default:
				ops = append(ops, Update(e.Config().NextHopGroup(), nhg), Update(e.Config().Session(), "s1"), Update(e.Config().Metadata(), "bWQ="))
			}
			if i%10 == 3 {
				p6 := fmt.Sprintf("2001:db8::%x/128", i)
				if keyed {
					ops = append(ops, Keyed(v6.Ipv6EntryRef(p6), Set(below6.NextHopGroup(), 2), Set(below6.Session(), "s1")))
				} else {
					e6 := v6.Ipv6Entry(p6)
					ops = append(ops, Update(e6.Config().NextHopGroup(), 2), Update(e6.Config().Session(), "s1"))
				}
			}
			if i%7 == 2 {
				id := uint64(i%40 + 1)
				if keyed {
					ops = append(ops, Keyed(nhgs.NextHopGroupRef(id), Set(belowNHG.Session(), "s1")))
				} else {
					ops = append(ops, Update(nhgs.NextHopGroup(id).Config().Session(), "s1"))
				}
			}
			if i%13 == 12 {
				// An entry written before: deleted, and in the next
				// round's overlap written again.
				ops = append(ops, Delete(v4.Ipv4Entry(pfx(i-6+100*round))))
			}
		}
		return ops
	}
	state := func(keyed bool) []Op {
		var ops []Op
		for i := range 400 {
			p, status := pfx(i), kedgepath.AftStatusInstalled
			if i < 100 && i%13 == 6 || i >= 106 && i <= 393 && (i-106)%13 == 0 {
				continue // deleted above, and not written again
			}
			withheld := i%19 == 4
			if withheld {
				status = kedgepath.AftStatusWithheld
			}
			e := v4.Ipv4Entry(p)
			switch {
			case keyed && withheld:
				ops = append(ops, Keyed(v4.Ipv4EntryRef(p), Set(st4.Status(), status), Set(st4.Reason(), "no next hop")))
			case keyed:
				ops = append(ops, Keyed(v4.Ipv4EntryRef(p), Set(st4.Status(), status)))
			case withheld:
				ops = append(ops, Update(e.State().Status(), status), Update(e.State().Reason(), "no next hop"))
			default:
				ops = append(ops, Update(e.State().Status(), status))
			}
		}
		return ops
	}

	var recs [][]byte
	var dumps []string
	for _, keyed := range []bool{true, false} {
		s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mustCommit(t, s, Update(sc.Id(), "s1"), Update(sc.Identity(), "test"))
		var rec []byte
		for round := range 2 {
			c := mustCommit(t, s, run(round, keyed)...)
			rec = append(rec, encodeRecord(c.Seq, 1, c.Changes)...)
		}
		c, err := s.CommitState(ctx, state(keyed))
		if err != nil {
			t.Fatal(err)
		}
		rec = append(rec, encodeRecord(c.Seq, 1, c.Changes)...)
		recs, dumps = append(recs, rec), append(dumps, dump(s))
	}
	if !bytes.Equal(recs[0], recs[1]) {
		t.Fatalf("Keyed runs: log records (%d bytes) differ from the leaf operations' (%d bytes)", len(recs[0]), len(recs[1]))
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("Keyed runs: tree\n%s\nwant\n%s", dumps[0], dumps[1])
	}
}
