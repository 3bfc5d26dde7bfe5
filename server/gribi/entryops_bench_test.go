package gribi

import (
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/aft"
)

// BenchmarkEntryOps: the operations of 1,000 new IPv4 entries of one
// group and session, as a bulk load's batch builds them (paths, leaf
// writes, values), without the commit.
func BenchmarkEntryOps(b *testing.B) {
	es := make([]aft.Entry, 1000)
	a := netip.MustParseAddr("10.128.0.1")
	for i := range es {
		es[i] = aft.Entry{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.PrefixFrom(a, 32), NHG: 1}, Meta: aft.Meta{Session: "s-1"}}
		a = a.Next()
	}
	ops := make([]store.Op, 0, len(es))
	b.ReportAllocs()
	for b.Loop() {
		var lw leafWrites
		ops = ops[:0]
		for i := range es {
			ops = entryOps(&lw, ops, &es[i], false)
		}
	}
}
