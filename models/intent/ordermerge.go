package intent

import (
	"cmp"
	"slices"
	"sort"
)

// mergeOrder is the sorted order of a cache after a change: order
// without the entries gone reports removed (removed lists them) and with
// fresh (sorted by compare) merged in, written into out (the cache's
// spare buffer, emptied). The route and AFT caches keep their entries in
// this order so that the intent reads them sorted without sorting the
// whole table per change. After a bulk change it is one merge pass; after
// a few each place is found by binary search and the runs between are
// copied whole.
func mergeOrder[T comparable](out, order, fresh, removed []T, gone func(T) bool, compare func(a, b T) int) []T {
	out = out[:0]
	if len(removed) == 0 && len(fresh) > len(order)/16 {
		// Nothing to drop: each fresh entry's place is found by a
		// galloping search from the last one's, and the runs between are
		// copied whole. The parts of a 100,000-route Set come after every
		// entry before them, so the first of a part finds its place in
		// about log n compares and the rest none, where the pass below
		// compared each entry of the order (two sort keys computed each).
		pos := 0
		for _, f := range fresh {
			lo, hi := pos, pos
			for step := 1; hi < len(order) && compare(f, order[hi]) >= 0; step *= 2 {
				lo, hi = hi+1, min(hi+step, len(order))
			}
			at := lo + sort.Search(hi-lo, func(k int) bool { return compare(f, order[lo+k]) < 0 })
			out = append(out, order[pos:at]...)
			out = append(out, f)
			pos = at
		}
		return append(out, order[pos:]...)
	}
	if len(fresh)+len(removed) > len(order)/16 {
		j := 0
		for _, e := range order {
			if gone(e) {
				continue
			}
			for j < len(fresh) && compare(fresh[j], e) < 0 {
				out = append(out, fresh[j])
				j++
			}
			out = append(out, e)
		}
		return append(out, fresh[j:]...)
	}
	type cut struct {
		at     int
		remove bool
		add    T
	}
	cuts := make([]cut, 0, len(fresh)+len(removed))
	for _, f := range fresh {
		cuts = append(cuts, cut{at: sort.Search(len(order), func(i int) bool { return compare(f, order[i]) < 0 }), add: f})
	}
	for _, d := range removed {
		i := sort.Search(len(order), func(i int) bool { return compare(d, order[i]) <= 0 })
		for i < len(order) && order[i] != d {
			i++ // entries with equal keys: find this one
		}
		if i < len(order) {
			cuts = append(cuts, cut{at: i, remove: true})
		}
	}
	// Insertions before a position come before removing the entry at it.
	slices.SortStableFunc(cuts, func(a, b cut) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmpBool(a.remove, b.remove))
	})
	pos := 0
	for _, k := range cuts {
		out = append(out, order[pos:k.at]...)
		pos = k.at
		if k.remove {
			pos++
		} else {
			out = append(out, k.add)
		}
	}
	return append(out, order[pos:]...)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// editOrder is mergeOrder's result for a few changes, made in order's own
// buffer (grown when fresh needs room) instead of a copy of it. A copy of
// a 100,000-route order and the clearing of the buffer it left were most
// of a one-route change while the collector marks: every pointer a copy
// or clear writes then goes through the write barrier, and the intent of
// a one-route change took 2.2-6.4 ms instead of about 50 µs, enough for a
// collection among BenchmarkRouteSingleInto100k's Sets to put its p99
// past 5 ms (its KEDGE_BENCH_TRACE shows it); edited here, 15-22 µs at
// the median during a cycle, 192 µs at most. Only the entries after the
// first edit move (none for a route that sorts last, none when a changed
// entry keeps its place); removed entries are looked up by identity as
// mergeOrder does, and one not in order is ignored.
func editOrder[T comparable](order, fresh, removed []T, compare func(a, b T) int) []T {
	var at []int
	for _, d := range removed {
		i := sort.Search(len(order), func(i int) bool { return compare(d, order[i]) <= 0 })
		for i < len(order) && order[i] != d {
			i++ // entries with equal keys: find this one
		}
		if i < len(order) {
			at = append(at, i)
		}
	}
	slices.Sort(at)
	at = slices.Compact(at)
	if len(at) == 1 && len(fresh) == 1 {
		// A changed entry replaced: when the new one sorts where the old
		// one was, it takes its slot and nothing moves.
		i, f := at[0], fresh[0]
		if (i == 0 || compare(f, order[i-1]) >= 0) && (i+1 == len(order) || compare(f, order[i+1]) < 0) {
			order[i] = f
			return order
		}
	}
	if len(at) > 0 {
		w := at[0]
		for k, i := range at {
			end := len(order)
			if k+1 < len(at) {
				end = at[k+1]
			}
			w += copy(order[w:], order[i+1:end])
		}
		clear(order[w:]) // the buffer must not keep removed entries alive
		order = order[:w]
	}
	if len(fresh) == 0 {
		return order
	}
	// From the back: each fresh entry goes after the entries of its key
	// (as mergeOrder puts it), the entries after it moved once.
	n := len(order)
	order = slices.Grow(order, len(fresh))[:n+len(fresh)]
	w, pos := len(order), n
	for j := len(fresh) - 1; j >= 0; j-- {
		f := fresh[j]
		i := sort.Search(pos, func(i int) bool { return compare(f, order[i]) < 0 })
		w -= pos - i
		copy(order[w:], order[i:pos])
		w--
		order[w] = f
		pos = i
	}
	return order
}
