package intent

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestOtherHasMatchesHas: the one pass a change set of many entries
// takes (otherHas) answers what a binary search per change (has) does,
// over an order where some destinations are shared by two entries
// (x.0/24 and x.1/24), for new entries, entries replaced, restated and
// deleted.
func TestOtherHasMatchesHas(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	entry := func(p string) *aftCached {
		e := &aftCached{kind: AFTIPv4, prefix: p}
		e.dst = netip.MustParsePrefix(p).Masked()
		e.key = keyOf(e.dst, aftTable)
		return e
	}
	var c aftCache
	for i := range 200 {
		for h := range 2 {
			if h == 0 || rng.IntN(3) == 0 {
				c.order = append(c.order, entry(fmt.Sprintf("10.0.%d.%d/24", i, h)))
			}
		}
	}
	slices.SortFunc(c.order, compareAFTCached)
	shared := 0
	type change struct{ old, ne *aftCached }
	var chs []change
	for _, e := range c.order {
		gone := entry(e.prefix)
		gone.dropped = true
		chs = append(chs, change{nil, e}, change{e, e}, change{gone, e})
		if i, _ := slices.BinarySearchFunc(c.order, e.key, func(x *aftCached, k sortKey) int { return compareKeys(x.key, k) }); c.order[i] != e ||
			i+1 < len(c.order) && c.order[i+1].key == e.key {
			shared++
		}
	}
	for i := range 50 { // deleted entries, some of a destination still held
		gone := entry(fmt.Sprintf("10.0.%d.%d/24", rng.IntN(220), 1+i%2))
		gone.dropped = true
		chs = append(chs, change{gone, nil})
	}
	if shared == 0 {
		t.Fatal("no destination shared: the test tests nothing")
	}
	other := c.otherHas(len(chs))
	for _, ch := range chs {
		for _, e := range [2]*aftCached{ch.old, ch.ne} {
			if e == nil {
				continue
			}
			if got, want := other(e.key, ch.old, ch.ne), c.has(e.key, ch.old, ch.ne); got != want {
				t.Errorf("%s (old %v, new %v): otherHas %v, has %v", e.prefix, ch.old != nil, ch.ne != nil, got, want)
			}
		}
	}
}
