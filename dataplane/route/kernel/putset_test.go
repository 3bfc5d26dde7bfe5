package kernel

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestPutSet: for random puts (IPv4 and IPv6, two tables, two metrics,
// nested prefixes), in key order, in key order with a key twice, and
// shuffled, putSet finds the first key put twice where a map of the keys
// does, and otherwise answers has as the map does for every key of the
// pool; puts in key order are searched without a map.
func TestPutSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var pool []route.Key
	for _, table := range []uint32{100, 254} {
		for _, metric := range []uint32{0, 50} {
			for i := range 12 {
				a := netip.AddrFrom4([4]byte{10, 93, byte(i), 0})
				if i%3 == 0 {
					a = netip.AddrFrom16([16]byte{0xfd, 0x93, byte(i)})
				}
				for _, bits := range []int{24, 25} {
					if a.Is6() {
						bits += 40
					}
					pool = append(pool, route.Key{Table: table, Dst: netip.PrefixFrom(a, bits).Masked(), Metric: metric})
				}
			}
		}
	}
	sorted, shuffled := 0, 0
	for round := range 2000 {
		var keys []route.Key
		for _, k := range pool {
			if rng.IntN(3) == 0 {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, compareKey)
		switch round % 4 {
		case 1: // in order, a key twice
			if len(keys) > 0 {
				i := rng.IntN(len(keys))
				keys = slices.Insert(keys, i, keys[i])
			}
		case 2: // shuffled
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		case 3: // shuffled, a key twice
			if len(keys) > 0 {
				keys = append(keys, keys[rng.IntN(len(keys))])
			}
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		}
		s := putSet{keys: make([]route.Key, len(keys))}
		ref := map[route.Key]bool{}
		dup, want := -1, -1
		for i, k := range keys {
			s.keys[i] = k
			if want < 0 && ref[k] {
				want = i
			}
			ref[k] = true
			if dup < 0 && !s.add(i) {
				dup = i
			}
			if dup >= 0 || want >= 0 {
				break
			}
		}
		if dup != want {
			t.Fatalf("round %d: key twice found at put %d, want %d (%v)", round, dup, want, keys)
		}
		if want >= 0 {
			continue
		}
		if s.m == nil {
			sorted++
			if !slices.IsSortedFunc(keys, compareKey) {
				t.Fatalf("round %d: puts out of order searched without a map", round)
			}
		} else {
			shuffled++
		}
		for _, k := range pool {
			if s.has(k) != ref[k] {
				t.Fatalf("round %d: has(%v) = %v, want %v", round, k, s.has(k), ref[k])
			}
		}
	}
	if sorted < 100 || shuffled < 100 {
		t.Fatalf("%d rounds searched in order and %d through a map: both ways not exercised", sorted, shuffled)
	}
}
