package gribi

import (
	"context"
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// BenchmarkFIBRead: what resolveFIB reads for the FIB outcomes of 1,000
// IPv4 entries, in one read of a tree that holds them (each entry found
// and its status and reason read).
func BenchmarkFIBRead(b *testing.B) {
	st := openStore(b, b.TempDir())
	defer st.Close()
	es := []aft.Entry{
		{Kind: aft.KindNextHop, NH: aft.NextHop{Index: 1, IP: netip.MustParseAddr("192.0.2.1")}, Meta: aft.Meta{Session: "s-1"}},
		{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 1, Members: []aft.Member{{Index: 1}}}, Meta: aft.Meta{Session: "s-1"}},
	}
	a := netip.MustParseAddr("10.128.0.1")
	var keys []aft.Key
	for range 1000 {
		e := aft.Entry{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.PrefixFrom(a, 32), NHG: 1}, Meta: aft.Meta{Session: "s-1"}}
		es = append(es, e)
		keys = append(keys, e.Key())
		a = a.Next()
	}
	var lw leafWrites
	var ops []store.Op
	for i := range es {
		ops = entryOps(&lw, ops, &es[i], false)
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		st.Read(func(t *tree.Tree) error {
			var pt prefixText
			for _, k := range keys {
				if _, _, ok := entryState(t, k, &pt); !ok {
					b.Fatalf("%v not in the tree", k)
				}
			}
			return nil
		})
	}
}
