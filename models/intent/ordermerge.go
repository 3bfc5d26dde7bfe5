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
