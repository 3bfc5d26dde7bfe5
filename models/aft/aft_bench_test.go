package aft

import (
	"net/netip"
	"testing"
)

// BenchmarkRIBBulk: 10,000 new IPv4 entries of one group into a RIB that
// holds the group and its next hop, each applied on its own (Apply), as
// a bulk load's batch is.
func BenchmarkRIBBulk(b *testing.B) {
	base := []Op{nh(1), nhg(2, 1, 1)}
	ops := make([]Op, 10000)
	a := netip.MustParseAddr("10.128.0.1")
	for i := range ops {
		ops[i] = Op{ID: uint64(3 + i), Verb: Add, Entry: Entry{Kind: KindIPv4, IP: IPEntry{Prefix: netip.PrefixFrom(a, 32), NHG: 1}}}
		a = a.Next()
	}
	b.ReportAllocs()
	for b.Loop() {
		r := New()
		for i := range base {
			r.Apply(&base[i])
		}
		for i := range ops {
			if rs := r.Apply(&ops[i]); len(rs) != 1 || !rs[0].OK {
				b.Fatalf("op %d: %v", ops[i].ID, rs)
			}
		}
	}
}
