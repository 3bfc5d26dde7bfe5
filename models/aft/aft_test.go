package aft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nh(id uint64) Op {
	return Op{ID: id, Verb: Add, Entry: Entry{Kind: KindNextHop, NH: NextHop{Index: id, IP: netip.MustParseAddr("192.0.2.1")}}}
}

func nhIdx(opID, idx uint64) Op {
	o := nh(opID)
	o.Entry.NH.Index = idx
	return o
}

func nhg(opID, id uint64, members ...uint64) Op {
	e := Entry{Kind: KindNextHopGroup, NHG: NextHopGroup{ID: id}}
	for _, m := range members {
		e.NHG.Members = append(e.NHG.Members, Member{Index: m, Weight: 1})
	}
	return Op{ID: opID, Verb: Add, Entry: e}
}

func v4(opID uint64, prefix string, group uint64) Op {
	p, _ := netip.ParsePrefix(prefix)
	return Op{ID: opID, Verb: Add, Entry: Entry{Kind: KindIPv4, IP: IPEntry{Prefix: p, NHG: group}}}
}

func del(o Op) Op { o.Verb = Delete; return o }

// outcome renders results as "id:ok" or "id:error".
func outcome(rs []Result) []string {
	var out []string
	for _, r := range rs {
		s := fmt.Sprintf("%d:ok", r.Op.ID)
		if !r.OK {
			s = fmt.Sprintf("%d:%v", r.Op.ID, r.Err)
		}
		out = append(out, s)
	}
	return out
}

// TestRIB walks the decisions one by one: forward references wait and
// complete when their reference arrives (in the order they complete),
// references block deletes, bad entries fail with ErrInvalid, an explicit
// replace of a missing entry fails, deletes of missing entries succeed.
func TestRIB(t *testing.T) {
	r := New()
	steps := []struct {
		op   Op
		want []string
	}{
		{v4(1, "10.0.0.0/8", 7), nil},   // waits for group 7
		{nhg(2, 7, 1, 2), nil},          // waits for next hop 1
		{nhIdx(3, 1), []string{"3:ok"}}, // the group now waits for next hop 2
		{nhIdx(4, 2), []string{"4:ok", "2:ok", "1:ok"}},
		{del(nhIdx(5, 1)), []string{"5:delete next-hop 1: entry is referenced by 1 entries"}},
		{del(nhg(6, 7)), []string{"6:delete next-hop-group 7: entry is referenced by 1 entries"}},
		{del(v4(7, "10.0.0.0/8", 0)), []string{"7:ok"}},
		{del(nhg(8, 7)), []string{"8:ok"}},
		{del(nhg(19, 7)), []string{"19:ok"}}, // already gone: succeeds
		{nhg(9, 8), []string{"9:add next-hop-group 8: invalid entry: empty next-hop-group"}},
		{v4(10, "10.1.2.3/8", 7), []string{"10:add ipv4-entry 10.1.2.3/8: invalid entry: host bits set"}},
		{v4(11, "2001:db8::/32", 7), []string{"11:add ipv4-entry 2001:db8::/32: invalid entry: wrong address family"}},
		{func() Op { o := nh(12); o.Entry.NH.Index = 0; return o }(), []string{"12:add next-hop: invalid entry: index zero"}},
		{func() Op { o := v4(13, "10.9.0.0/16", 7); o.Verb = Replace; return o }(), []string{"13:replace ipv4-entry 10.9.0.0/16: entry does not exist"}},
	}
	for i, s := range steps {
		op := s.op
		got := outcome(r.Apply(&op))
		if d := cmp.Diff(s.want, got); d != "" {
			t.Errorf("step %d (op %d): results (-want +got):\n%s", i, s.op.ID, d)
		}
	}
	if r.Len() != 2 || r.Pending() != 0 {
		t.Errorf("RIB holds %d entries, %d pending; want the two next hops", r.Len(), r.Pending())
	}
	// DeleteSession keeps what another session's entry references.
	a, b := nh(20), nhg(21, 30, 20)
	a.Entry.NH.Index, a.Entry.Meta.Session, b.Entry.Meta.Session = 20, "A", "B"
	r.Apply(&a)
	r.Apply(&b)
	if got := r.DeleteSession("A"); len(got) != 0 {
		t.Errorf("DeleteSession removed %v, which B's group references", got)
	}
	if got := r.DeleteSession("B"); len(got) != 1 || got[0].ID != 30 {
		t.Errorf("DeleteSession(B) removed %v, want group 30", got)
	}
	if !errors.Is(r.Apply(&Op{ID: 40, Verb: Delete, Entry: Entry{Kind: KindNextHop}})[0].Err, ErrInvalid) {
		t.Error("delete of next hop 0 did not fail with ErrInvalid")
	}
}

// TestRIBRandomConverges applies random operations, forward references
// included, and checks the invariants after each: every reference of a
// held entry resolves, reference counts equal what the entries hold, and
// a waiting operation waits for something missing.
func TestRIBRandomConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := New()
	for step := range 5000 {
		id := uint64(step + 1)
		var op Op
		switch rng.IntN(6) {
		case 0:
			op = nh(id)
			op.Entry.NH.Index = uint64(1 + rng.IntN(8))
		case 1:
			op = nhg(id, uint64(1+rng.IntN(6)), uint64(1+rng.IntN(8)), uint64(9+rng.IntN(2)))
		case 2, 3:
			op = v4(id, fmt.Sprintf("10.%d.0.0/16", rng.IntN(20)), uint64(1+rng.IntN(6)))
		case 4:
			op = del(nhg(id, uint64(1+rng.IntN(6))))
		default:
			op = del(nh(id))
			op.Entry.NH.Index = uint64(1 + rng.IntN(10))
		}
		r.Apply(&op)
		nhRefs, nhgRefs := map[uint64]int{}, map[uint64]int{}
		for _, e := range r.nhgs {
			for _, m := range e.NHG.Members {
				if r.nhs[m.Index] == nil {
					t.Fatalf("step %d: group %d references missing next hop %d", step, e.NHG.ID, m.Index)
				}
				nhRefs[m.Index]++
			}
		}
		for _, e := range r.ips {
			if r.nhgs[e.IP.NHG] == nil {
				t.Fatalf("step %d: %s references missing group %d", step, e.IP.Prefix, e.IP.NHG)
			}
			nhgRefs[e.IP.NHG]++
		}
		if d := cmp.Diff(nhRefs, r.nhRefs); d != "" {
			t.Fatalf("step %d: next hop reference counts (-held +counted):\n%s", step, d)
		}
		if d := cmp.Diff(nhgRefs, r.nhgRefs); d != "" {
			t.Fatalf("step %d: group reference counts (-held +counted):\n%s", step, d)
		}
		for _, w := range r.pending {
			if _, ok := r.unresolved(&w.Entry); !ok {
				t.Fatalf("step %d: operation %d waits although its references resolve", step, w.ID)
			}
		}
	}
}
