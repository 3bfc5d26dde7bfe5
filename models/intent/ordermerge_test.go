package intent

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// mergeItem is an order entry: its key, which entry it is, and whether
// it is gone.
type mergeItem struct {
	key, id int
	gone    bool
}

// TestMergeOrderMatchesSortedMerge: whichever path mergeOrder takes
// (galloping over an order nothing leaves, one pass, or binary searches
// after a few changes), its result is the order without the removed
// entries and with the fresh ones, an order entry before a fresh one of
// the same key.
func TestMergeOrderMatchesSortedMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 5))
	compare := func(a, b *mergeItem) int { return cmp.Compare(a.key, b.key) }
	for i := range 2000 {
		id := 0
		item := func(span int) *mergeItem { id++; return &mergeItem{key: r.IntN(span), id: id} }
		span := 1 + r.IntN(500)
		order := make([]*mergeItem, r.IntN(300))
		for j := range order {
			order[j] = item(span)
		}
		slices.SortStableFunc(order, compare)
		fresh := make([]*mergeItem, []int{0, 1, 3, r.IntN(400)}[r.IntN(4)])
		for j := range fresh {
			fresh[j] = item(span + r.IntN(2)*span) // some after every entry
		}
		slices.SortStableFunc(fresh, compare)
		var removed []*mergeItem
		if r.IntN(2) == 0 {
			for _, e := range order {
				if r.IntN(8) == 0 {
					e.gone = true
					removed = append(removed, e)
				}
			}
		}
		var want []*mergeItem
		for _, e := range order {
			if !e.gone {
				want = append(want, e)
			}
		}
		want = append(want, fresh...)
		slices.SortStableFunc(want, compare) // stable: order's entries first on ties
		got := mergeOrder(nil, order, fresh, removed, func(e *mergeItem) bool { return e.gone }, compare)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d (%d in order, %d fresh, %d removed): merged order differs", i, len(order), len(fresh), len(removed))
		}
	}
}

// TestEditOrderMatchesMergeOrder: editOrder, which edits the order in
// its own buffer, gives what mergeOrder gives for the same few changes:
// fresh entries after every entry of their key, some of them sorting
// last, removed ones (some not in the order) gone, a removed entry
// replaced by one of its key, and the buffer past the result cleared.
func TestEditOrderMatchesMergeOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 6))
	compare := func(a, b *mergeItem) int { return cmp.Compare(a.key, b.key) }
	for i := range 5000 {
		id := 0
		item := func(span int) *mergeItem { id++; return &mergeItem{key: r.IntN(span), id: id} }
		span := 1 + r.IntN(300)
		order := make([]*mergeItem, r.IntN(200), 200+r.IntN(10))
		for j := range order {
			order[j] = item(span)
		}
		slices.SortStableFunc(order, compare)
		var fresh, removed []*mergeItem
		for range []int{0, 1, 1, 2, r.IntN(6)}[r.IntN(5)] {
			fresh = append(fresh, item(span+r.IntN(2)*span)) // some after every entry
		}
		if len(order) > 0 {
			for range []int{0, 0, 1, 2, r.IntN(6)}[r.IntN(5)] {
				e := order[r.IntN(len(order))]
				if !slices.Contains(removed, e) {
					removed = append(removed, e)
				}
			}
			if len(removed) == 1 && len(fresh) == 1 && r.IntN(2) == 0 {
				fresh[0].key = removed[0].key // a changed entry
			}
		}
		if r.IntN(8) == 0 {
			removed = append(removed, item(span)) // not in the order
		}
		slices.SortStableFunc(fresh, compare)
		for _, e := range removed {
			e.gone = true
		}
		want := mergeOrder(nil, order, fresh, removed, func(e *mergeItem) bool { return e.gone }, compare)
		before := len(order)
		got := editOrder(order, fresh, removed, compare)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d (%d in order, %d fresh, %d removed): edited order differs", i, before, len(fresh), len(removed))
		}
		for _, e := range got[len(got):cap(got)][:max(0, before-len(got))] {
			if e != nil {
				t.Fatalf("case %d: the buffer past the order keeps an entry", i)
			}
		}
	}
}

// TestSameKeyIsKeyEquality: sameKey agrees with comparing the sort keys,
// over IPv4, IPv6, IPv4-mapped and invalid destinations, tables 0 and 254.
func TestSameKeyIsKeyEquality(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 6))
	addrs := []string{"10.0.0.0", "10.0.0.1", "0.0.0.0", "::", "::ffff:10.0.0.0", "2001:db8::", "2001:db8::1"}
	pick := func() *cachedRoute {
		e := &cachedRoute{}
		e.rt.table = []uint32{0, 254, 100}[r.IntN(3)]
		if r.IntN(10) > 0 {
			a := netip.MustParseAddr(addrs[r.IntN(len(addrs))])
			e.rt.dst = netip.PrefixFrom(a, []int{0, 8, 24, 32, 64, 200}[r.IntN(6)]) // 200: invalid
		}
		return e
	}
	for range 20000 {
		a, b := pick(), pick()
		if got, want := sameKey(a, b), compareKeys(a.key(), b.key()) == 0; got != want {
			t.Fatalf("sameKey(%v/%d, %v/%d) = %v, the keys say %v", a.rt.dst, a.rt.table, b.rt.dst, b.rt.table, got, want)
		}
	}
}
