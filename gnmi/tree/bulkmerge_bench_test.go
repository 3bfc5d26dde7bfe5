package tree

import (
	"runtime"
	"testing"
)

// BenchmarkBulkMerge times a bulk Set's update of 65,536 routes into an
// empty list, decoding its JSON included, as "one" (entry by entry) and
// "two" (bulkMerge's entries built on both cores).
func BenchmarkBulkMerge(b *testing.B) {
	bothWays(b, &splitMergeMin, func(b *testing.B) {
		const n = 65536
		tr := New(testSchema(b))
		val, at := jsonVal(routesJSON(n)), p(b, "/top/routes")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			runtime.GC() // the last round's garbage is not this one's
			tx, err := tr.Begin(false)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := tx.Update(at, val); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			tx.Rollback()
			b.StartTimer()
		}
	})
}
