package intent

import (
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/yang"
)

// BenchmarkObserveBulk times what the route reconciler does with a
// 100,000-route Set's commit before its first routes can reach the
// backend: Observe of the commit's changes, then the first part of the
// change set (1,024 entries with the daemon's Chunk, 8,192), and every
// part; and after it, Observe of the reconciler's own state write that
// follows (a status on each route), which the first Set after the load
// waits behind.
func BenchmarkObserveBulk(b *testing.B) {
	const n = 100_000
	schema, err := yang.Schema()
	if err != nil {
		b.Fatal(err)
	}
	ls := make([]leaf, 0, 4*n)
	a := netip.MustParseAddr("10.128.0.1")
	for range n {
		ls = append(ls, routeLeaves(a.String()+"/32", "underlay", "operator")...)
		a = a.Next()
	}
	tr, changes := buildChanges(b, ls)
	acc, _ := accord.Default(5)
	// empty is a cache that has read an empty tree, as a daemon's has
	// before the bulk Set.
	empty := func(b *testing.B) *RouteCache {
		c := &RouteCache{Chunk: 8192}
		if _, err := c.Routes(tree.New(schema), acc, 1); err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("observe", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			c := empty(b)
			b.StartTimer()
			c.Observe(2, false, changes)
		}
	})
	b.Run("first-part", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			c := empty(b)
			c.Observe(2, false, changes)
			b.StartTimer()
			s, err := c.Changes(tr, acc, 2)
			if err != nil || s.Delta == nil || s.Next == nil {
				b.Fatalf("not a first part: err %v", err)
			}
			b.ReportMetric(float64(len(s.Delta.Patch.Put)), "routes")
		}
	})
	b.Run("all-parts", func(b *testing.B) {
		// The intent's whole share of the Set: every part, read one
		// after the other (the daemon reads each while the backend
		// programs the one before).
		for b.Loop() {
			b.StopTimer()
			c := empty(b)
			b.StartTimer()
			c.Observe(2, false, changes)
			s, err := c.Changes(tr, acc, 2)
			put := 0
			for err == nil && s.Delta != nil {
				put += len(s.Delta.Patch.Put)
				s.Release()
				if s.Next == nil {
					break
				}
				s, err = s.Next()
			}
			if err != nil || put != n {
				b.Fatalf("%d routes put, err %v", put, err)
			}
		}
	})
	b.Run("observe-state", func(b *testing.B) {
		// The reconciler's own state write after the Set (a status on
		// every route, one commit), observed by a cache that has read
		// every part: what the first Set after a bulk load waits for.
		// A tree of its own, so that -count runs it again.
		tr, changes := buildChanges(b, ls)
		c := empty(b)
		c.Observe(2, false, changes)
		set, err := c.Changes(tr, acc, 2)
		for err == nil && set.Delta != nil && set.Next != nil {
			set.Release()
			set, err = set.Next()
		}
		if err != nil {
			b.Fatal(err)
		}
		tx, err := tr.Begin(true)
		if err != nil {
			b.Fatal(err)
		}
		a := netip.MustParseAddr("10.128.0.1")
		for range n {
			p, err := tree.ParsePath("/kedge/routes/route[prefix=" + a.String() + "/32][table=254]/state/status")
			if err != nil {
				b.Fatal(err)
			}
			if err := tx.Update(p, s("installed")); err != nil {
				b.Fatal(err)
			}
			a = a.Next()
		}
		stateChanges := tx.Changes()
		tx.Commit()
		if len(stateChanges) != n {
			b.Fatalf("%d state changes, want %d", len(stateChanges), n)
		}
		seq := uint64(3)
		for b.Loop() {
			c.Observe(seq, true, stateChanges)
			seq++
		}
	})
}
