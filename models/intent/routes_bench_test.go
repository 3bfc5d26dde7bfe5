package intent

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/yang"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// BenchmarkRoutes100k times the routes intent over 100,000 routes (what a
// reconcile pays per change at that size), median of 5 runs.
func BenchmarkRoutes100k(b *testing.B) {
	const n = 100_000
	tr := routeTree(b, n)
	for _, level := range []uint8{5, 1} {
		acc, _ := accord.Default(level)
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			set, err := Routes(tr, acc)
			ds = append(ds, time.Since(start))
			if err != nil || len(set.Config.Routes)+len(set.Withheld) != n {
				b.Fatalf("level %d: %d routes + %d withheld, err %v", level, len(set.Config.Routes), len(set.Withheld), err)
			}
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[2].Microseconds())/1000, "level"+string('0'+level)+"-ms")
	}
}

// routeTree is a tree of n underlay /32 routes from 10.128.0.1 on.
func routeTree(b *testing.B, n int) *tree.Tree {
	ls := make([]leaf, 0, 4*n)
	a := netip.MustParseAddr("10.128.0.1")
	for range n {
		ls = append(ls, routeLeaves(a.String()+"/32", "underlay", "operator")...)
		a = a.Next()
	}
	return buildTree(b, ls)
}

// buildTree is build for benchmarks too.
func buildTree(tb testing.TB, leaves []leaf) *tree.Tree {
	tb.Helper()
	tr, _ := buildChanges(tb, leaves)
	return tr
}

// buildChanges builds a tree of leaves in one commit and returns it with
// the commit's changes (what the store's feed would carry).
func buildChanges(tb testing.TB, leaves []leaf) (*tree.Tree, []tree.Change) {
	tb.Helper()
	schema, err := yang.Schema()
	if err != nil {
		tb.Fatal(err)
	}
	tr := tree.New(schema)
	tx, err := tr.Begin(false)
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range leaves {
		p, err := tree.ParsePath(l.path)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tx.Update(p, l.val); err != nil {
			tb.Fatalf("update %s: %v", l.path, err)
		}
	}
	if err := tx.Validate(); err != nil {
		tb.Fatal(err)
	}
	changes := tx.Changes()
	tx.Commit()
	return tr, changes
}

// BenchmarkRoutesOneChange times the intent a reconcile computes after a
// one-route Set into 1,000 and 100,000 routes, with and without a
// RouteCache, side by side.
func BenchmarkRoutesOneChange(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		tr := routeTree(b, n)
		acc, _ := accord.Default(5)
		var cache RouteCache
		var seq uint64
		if _, err := cache.Routes(tr, acc, seq); err != nil {
			b.Fatal(err)
		}
		name := strconv.Itoa(n)
		b.Run(name+"/observed", func(b *testing.B) {
			// The reconciler's case: told of each commit by the feed.
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				changes := setLeaf(b, tr, "/kedge/routes/route[prefix=10.128.0.1/32][table=254]/config/metric", u(uint64(i%100)))
				seq++
				cache.Observe(seq, false, changes)
				b.StartTimer()
				if set, err := cache.Routes(tr, acc, seq); err != nil || len(set.Config.Routes) != n {
					b.Fatalf("%d routes, err %v", len(set.Config.Routes), err)
				}
			}
		})
		b.Run(name+"/changes", func(b *testing.B) {
			// The reconciler's case since issue 17: only what changed.
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				changes := setLeaf(b, tr, "/kedge/routes/route[prefix=10.128.0.1/32][table=254]/config/metric", u(uint64(i%100)))
				seq++
				cache.Observe(seq, false, changes)
				b.StartTimer()
				if set, err := cache.Changes(tr, acc, seq); err != nil || set.Delta == nil || len(set.Delta.Patch.Put) != 1 {
					b.Fatalf("not a one-route change set (err %v)", err)
				}
			}
		})
		b.Run(name+"/cached", func(b *testing.B) {
			// Commits not observed: every entry is walked, changed ones read.
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				setLeaf(b, tr, "/kedge/routes/route[prefix=10.128.0.1/32][table=254]/config/metric", u(uint64(i%100)))
				seq++
				b.StartTimer()
				if set, err := cache.Routes(tr, acc, seq+1); err != nil || len(set.Config.Routes) != n {
					b.Fatalf("%d routes, err %v", len(set.Config.Routes), err)
				}
			}
		})
		b.Run(name+"/cold-cache", func(b *testing.B) {
			// The first intent after a bulk Set: every entry is new.
			for b.Loop() {
				var cold RouteCache
				if set, err := cold.Routes(tr, acc, 0); err != nil || len(set.Config.Routes) != n {
					b.Fatalf("%d routes, err %v", len(set.Config.Routes), err)
				}
			}
		})
		b.Run(name+"/uncached", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				setLeaf(b, tr, "/kedge/routes/route[prefix=10.128.0.1/32][table=254]/config/metric", u(uint64(i%100)))
				b.StartTimer()
				if set, err := Routes(tr, acc); err != nil || len(set.Config.Routes) != n {
					b.Fatalf("%d routes, err %v", len(set.Config.Routes), err)
				}
			}
		})
	}
}

func setLeaf(tb testing.TB, tr *tree.Tree, path string, v *gpb.TypedValue) []tree.Change {
	tb.Helper()
	p, err := tree.ParsePath(path)
	if err != nil {
		tb.Fatal(err)
	}
	tx, err := tr.Begin(false)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tx.Update(p, v); err != nil {
		tb.Fatal(err)
	}
	changes := tx.Changes()
	tx.Commit()
	return changes
}
