package tree

import (
	"fmt"
	"testing"
)

// BenchmarkWriteKeyedEntries writes 100,000 entries of a list with one
// string key as a bulk loader does, in transactions of 1,000 keyed
// writes (a config leaf each, the same text), then a state leaf of each
// (the same text) likewise: the tree alone, no store. ns/op is the whole
// load; µs/entry splits it.
func BenchmarkWriteKeyedEntries(b *testing.B) {
	const total, per = 100_000, 1_000
	s := testSchema(b)
	names := make([]string, total)
	for i := range names {
		names[i] = fmt.Sprintf("sw%06d", i)
	}
	parent, keyNames := p(b, "/top/devices"), []string{"name"}
	address, stateAddr := p(b, "/config/address"), p(b, "/state/address")
	cfgVal, stVal := strVal("192.0.2.1"), strVal("192.0.2.1")
	b.ReportAllocs()
	for range b.N {
		tr := New(s)
		for _, state := range []bool{false, true} {
			leaf, val := address, cfgVal
			if state {
				leaf, val = stateAddr, stVal
			}
			for i := 0; i < total; i += per {
				tx, err := tr.Begin(state)
				if err != nil {
					b.Fatal(err)
				}
				for _, name := range names[i : i+per] {
					k := &EntryKey{parent, "device", keyNames, []Value{String(name)}}
					if err := tx.WriteKeyedEntry(k, []EntryWrite{{Path: leaf, Relative: true, Val: val}}); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Validate(); err != nil {
					b.Fatal(err)
				}
				tx.Commit()
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N)/(2*total), "µs/entry")
}
