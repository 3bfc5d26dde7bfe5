package intent

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/yang"
)

// TestOneCommitPartsMatch is the one-commit reading's differential test
// (onecommit.go): two caches are told of the same random commits (bulk
// loads into an empty table and into a full one, bulk deletes, entries
// changed by two commits before they are read, single changes, state
// written and removed, posture changes, commits the caches miss, a
// commit between two parts), one reading a one-commit change without
// its dirty set and the other as any change, and every part of every
// intent must be the same set.
func TestOneCommitPartsMatch(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(6) {
		chunk := []int{4, 8, 16}[seed%3]
		t.Run(fmt.Sprintf("%d-chunk%d", seed, chunk), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 23))
			tr := tree.New(schema)
			fast, ref := &RouteCache{Chunk: chunk}, &RouteCache{Chunk: chunk, noOneCommit: true}
			var seq uint64
			level := uint8(5)
			const pool = 300
			// Now and then in table 0, which is 254: two entries share a
			// destination, and the intent is read whole, from a part.
			table := func(i int) int {
				if i >= 250 && i%5 == 0 {
					return 0
				}
				return 254
			}
			prefix := func(i int) string { return fmt.Sprintf("10.50.%d.%d/32", i%250/100, i%250%100) }
			entry := func(i int) string {
				return fmt.Sprintf("/kedge/routes/route[prefix=%s][table=%d]", prefix(i), table(i))
			}
			set := func(i int) []op {
				c := entry(i) + "/config/"
				return []op{{path: c + "prefix", val: s(prefix(i))}, {path: c + "table", val: u(uint64(table(i)))},
					{path: c + "device", val: s("eth0")}, {path: c + "metric", val: u(uint64(rng.IntN(4)))},
					{path: c + "class", val: s([]string{"underlay", "overlay", "management"}[rng.IntN(3)])}}
			}
			commit := func(ops []op) {
				changes, ok := applyOps(t, tr, ops)
				if !ok {
					return
				}
				seq++
				if rng.IntN(25) != 0 {
					fast.Observe(seq, ops[0].state, changes)
					ref.Observe(seq, ops[0].state, changes)
				}
			}
			oneCommit, allNew, parts := 0, 0, 0
			for step := range 400 {
				var ops []op
				switch what := rng.IntN(12); {
				case what < 3: // a bulk load, in the client's order
					for _, i := range rng.Perm(pool)[:10+rng.IntN(150)] {
						ops = append(ops, set(i)...)
					}
				case what < 4: // a bulk delete, half the time of every route
					if rng.IntN(2) == 0 {
						ops = []op{{path: "/kedge/routes"}}
						break
					}
					for range 5 + rng.IntN(40) {
						ops = append(ops, op{path: entry(rng.IntN(pool))})
					}
				case what < 7:
					ops = set(rng.IntN(pool))
				case what < 8:
					ops = []op{{path: entry(rng.IntN(pool))}}
				case what < 10:
					st := op{path: entry(rng.IntN(pool)) + "/state/status", val: s("installed"), state: true}
					if rng.IntN(3) == 0 {
						st.val = nil
					}
					ops = []op{st}
				default:
					level = uint8(1 + rng.IntN(5))
				}
				if len(ops) > 0 {
					commit(ops)
				}
				if rng.IntN(3) == 0 {
					continue // commits pile up: entries changed twice before read
				}
				acc, _ := accord.Default(level)
				got, err1 := fast.Changes(tr, acc, seq)
				want, err2 := ref.Changes(tr, acc, seq)
				for part := 0; ; part++ {
					if fmt.Sprint(err1) != fmt.Sprint(err2) {
						t.Fatalf("step %d part %d: error %v, want %v", step, part, err1, err2)
					}
					if fast.oneCommit {
						oneCommit++
						if fast.allNew {
							allNew++
						}
					}
					// A change read whole takes its entries from a map, in
					// no order: its deletes are compared as a set.
					whole := part == 0 && got.Next == nil
					if g, w := sharedPart(got, whole), sharedPart(want, whole); !reflect.DeepEqual(g, w) {
						t.Fatalf("step %d part %d: sets differ:\ngot  %+v %#v\nwant %+v %#v", step, part, g, g.Delta, w, w.Delta)
					}
					if (got.Next == nil) != (want.Next == nil) {
						t.Fatalf("step %d part %d: a next part %t, want %t", step, part, got.Next != nil, want.Next != nil)
					}
					if got.Next == nil {
						got.Release()
						want.Release()
						break
					}
					if part == 1 && rng.IntN(8) == 0 {
						commit(set(rng.IntN(pool))) // the rest is then read whole
					}
					parts++
					g, w := got, want
					got, err1 = got.Next()
					want, err2 = want.Next()
					g.Release()
					w.Release()
				}
			}
			if oneCommit < 20 || allNew < 3 || parts < 40 {
				t.Errorf("%d parts read as one commit's (%d into an empty table) of %d after the first: the fast path is not exercised", oneCommit, allNew, parts)
			}
			t.Logf("%d parts read as one commit's (%d into an empty table) of %d after the first", oneCommit, allNew, parts)
		})
	}
}

// sharedPart is s without what two caches cannot share: its next part
// and its buffers; and with its deletes sorted when unordered.
func sharedPart(s RouteSet, unordered bool) RouteSet {
	s.Next = nil
	if s.Delta != nil {
		d := *s.Delta
		d.bufs = nil
		if unordered {
			d.Patch.Del = slices.Clone(d.Patch.Del)
			slices.SortFunc(d.Patch.Del, func(a, b route.Route) int { return compareKeys(keyOf(a.Dst, a.Table), keyOf(b.Dst, b.Table)) })
		}
		s.Delta = &d
	}
	return s
}
