package tree

import (
	"math"
	"runtime"
	"testing"
)

// BenchmarkBulkValidate times what a bulk Set costs after its merge:
// Validate and Changes of one update of 65,536 routes (as many as
// routesJSON makes distinct) into an empty
// list (the merge itself runs with the timer stopped).
// It runs as "one" (a single walk) and "two" (split on both cores).
func BenchmarkBulkValidate(b *testing.B) { bothWays(b, &splitAnalysisMin, benchBulkValidate) }

// bothWays runs fn as "one", with the split threshold *min out of reach,
// and as "two", with it at its default.
func bothWays(b *testing.B, min *int, fn func(*testing.B)) {
	for _, c := range []struct {
		name string
		min  int
	}{{"one", math.MaxInt}, {"two", *min}} {
		b.Run(c.name, func(b *testing.B) {
			defer func(m int) { *min = m }(*min)
			*min = c.min
			fn(b)
		})
	}
}

func benchBulkValidate(b *testing.B) {
	const n = 65536
	tr := New(testSchema(b))
	val, at := jsonVal(routesJSON(n)), p(b, "/top/routes")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		tx, err := tr.Begin(false)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Update(at, val); err != nil {
			b.Fatal(err)
		}
		runtime.GC() // the merge's garbage is not the walk's
		b.StartTimer()
		if err := tx.Validate(); err != nil {
			b.Fatal(err)
		}
		if got := len(tx.Changes()); got != 5*n {
			b.Fatalf("%d changes, want %d", got, 5*n)
		}
		b.StopTimer()
		tx.Rollback()
		b.StartTimer()
	}
}
