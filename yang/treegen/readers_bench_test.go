package treegen_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// BenchmarkReadRoutes100k reads every config leaf the route intent reads
// from 100,000 routes, once through the typed readers and once as the
// intent did before them (Entries by name, Inst.Leaf with schema nodes
// looked up once), alternating the two over several rounds so that both
// see the same machine. It reports each one's median ns per route and the
// ratio typed/cached: the typed readers must cost the same.
func BenchmarkReadRoutes100k(b *testing.B) {
	const n = 100_000
	var sb strings.Builder
	sb.WriteString(`{"kedge:kedge": {"routes": {"route": [`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		p := fmt.Sprintf("10.%d.%d.0/24", i>>8&0xff, i&0xff)
		table := 1000 + i>>16
		fmt.Fprintf(&sb, `{"prefix":%q,"table":%d,"config":{"prefix":%q,"table":%d,"device":"kedge0","next-hop":"10.255.0.1","class":"overlay","metric":%d}}`,
			p, table, p, table, i%7)
	}
	sb.WriteString(`]}}}`)
	tr := newTree(b, sb.String(), nil)

	var sink int
	typed := func() {
		for r := range kedgetree.Of(tr).Kedge().Routes().Route().All() {
			c := r.Config()
			p, _ := c.Prefix()
			table, _ := c.Table()
			nh, _ := c.NextHop()
			dev, _ := c.Device()
			metric, _ := c.Metric()
			class, _ := c.Class()
			tier, _ := c.Tier()
			sink += len(p) + int(table) + len(nh) + len(dev) + int(metric) + len(class) + len(tier)
		}
	}
	cached := func() {
		k := tr.Root().Sub("kedge")
		cfg := tr.Schema().Find("/kedge/routes/route/config")
		config := tr.Schema().Find("/kedge/routes/route").Child("config")
		leaves := make([]*tree.Node, 0, 7)
		for _, name := range []string{"prefix", "table", "next-hop", "device", "metric", "class", "tier"} {
			leaves = append(leaves, cfg.Child(name))
		}
		k.Sub("routes").Entries("route", func(in *tree.Inst) bool {
			c := in.SubAt(config)
			sink += len(c.Leaf(leaves[0]).Str()) + int(c.Leaf(leaves[1]).UintVal()) + len(c.Leaf(leaves[2]).Str()) +
				len(c.Leaf(leaves[3]).Str()) + int(c.Leaf(leaves[4]).UintVal()) + len(c.Leaf(leaves[5]).Str()) + len(c.Leaf(leaves[6]).Str())
			return true
		})
	}
	const rounds = 15
	var ts, cs []float64
	b.ResetTimer()
	for range b.N {
		for i := range rounds {
			// Alternate which goes first: the second of a pair finds the
			// tree warmer in the cache.
			first, second, fs, ss := typed, cached, &ts, &cs
			if i%2 == 1 {
				first, second, fs, ss = cached, typed, &cs, &ts
			}
			start := time.Now()
			first()
			*fs = append(*fs, float64(time.Since(start).Nanoseconds())/n)
			start = time.Now()
			second()
			*ss = append(*ss, float64(time.Since(start).Nanoseconds())/n)
		}
	}
	slices.Sort(ts)
	slices.Sort(cs)
	mt, mc := ts[len(ts)/2], cs[len(cs)/2]
	b.ReportMetric(mt, "typed-ns/route")
	b.ReportMetric(mc, "cached-ns/route")
	b.ReportMetric(mt/mc, "typed/cached")
	if sink == 0 {
		b.Fatal("nothing read")
	}
}
