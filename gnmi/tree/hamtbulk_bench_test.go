package tree

import (
	"fmt"
	"testing"
)

// BenchmarkFillEmpty adds 100,000 new entries to an empty list as
// bulkMerge does, "one-by-one" (getOrAdd, as before fillEmpty) and
// "fillEmpty" (both cores), side by side in one run.
func BenchmarkFillEmpty(b *testing.B) {
	const n = 100000
	var parts [2][]keyedInst
	for i := range n {
		parts[i*2/n] = append(parts[i*2/n], keyedInst{fmt.Sprintf("10.%d.%d.%d/32 254", i>>16, i>>8&255, i&255), &Inst{}})
	}
	b.Run("one-by-one", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var m entries
			for _, p := range parts {
				for _, x := range p {
					_, slot := m.getOrAdd(1, x.k)
					*slot = x.e
				}
			}
		}
	})
	b.Run("fillEmpty", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var m entries
			if !m.fillEmpty(1, parts) {
				b.Fatal("refused")
			}
		}
	})
}
