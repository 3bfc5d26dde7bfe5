package yang_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/kedge"
)

// These benchmarks measure the generated bindings, to inform the tree
// store: what a whole-tree ygot validation costs as routes grow, and how
// much heap the generated structs take per route at issue 2's 100,000
// routes. Each does its whole workload once, so -benchtime 1x gives the
// numbers.

const benchRoutes = 100_000

func routesTree(n int) *kedge.Device {
	d := &kedge.Device{}
	rs := d.GetOrCreateKedge().GetOrCreateRoutes()
	for i := range n {
		p := fmt.Sprintf("10.%d.%d.0/24", i>>8&0xff, i&0xff)
		table := uint32(1000 + i>>16)
		c := rs.GetOrCreateRoute(p, table).GetOrCreateConfig()
		c.Prefix = ygot.String(p)
		c.Table = ygot.Uint32(table)
		c.Device = ygot.String("kedge0")
		c.NextHop = ygot.String("10.255.0.1")
		c.Class = kedge.Kedge_RouteClass_overlay
		c.Owner = ygot.String("bench")
	}
	return d
}

// BenchmarkValidateRoutes times ygot's whole-tree Validate at growing route
// counts. Most of the time goes to ytypes.ValidateLeafRefData, which walks
// the whole data tree by reflection to collect leafref targets (every list
// key is a leafref). The per-route ratio between 20k and 5k routes shows
// whether the cost per route grows with the tree (1 means linear).
func BenchmarkValidateRoutes(b *testing.B) {
	for range b.N {
		perRoute := map[int]float64{}
		for _, n := range []int{5_000, 10_000, 20_000} {
			d := routesTree(n)
			start := time.Now()
			if err := d.Validate(); err != nil {
				b.Fatalf("validate: %v", err)
			}
			el := time.Since(start)
			perRoute[n] = float64(el.Nanoseconds()) / float64(n)
			b.ReportMetric(float64(el.Milliseconds()), fmt.Sprintf("ms/validate@%dk", n/1000))
		}
		b.ReportMetric(perRoute[20_000]/perRoute[5_000], "per-route-ratio-20k/5k")
	}
}

func BenchmarkHeapPerRoute(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := routesTree(benchRoutes)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchRoutes, "heapB/route")
		runtime.KeepAlive(d)
	}
}

func BenchmarkUnzipSchema(b *testing.B) {
	for range b.N {
		const n = 20
		start := time.Now()
		for range n {
			if _, err := kedge.UnzipSchema(); err != nil {
				b.Fatalf("unzip: %v", err)
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/n, "µs/unzip")
	}
}
