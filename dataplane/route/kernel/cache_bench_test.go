package kernel

import (
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
)

// BenchmarkForgetPodLink: a pod's veth goes and the cache forgets its one
// route, beside 100,000 routes over an uplink (link 1). "indexed" is the
// cache as it is; "walked" the same with the pod's link made crowded, so
// that forgetting it walks the cache as every link did before the index.
func BenchmarkForgetPodLink(b *testing.B) {
	for _, mode := range []string{"indexed", "walked"} {
		b.Run(mode, func(b *testing.B) {
			c := newRouteCache(100_001)
			a := netip.MustParseAddr("10.128.0.1")
			for range 100_000 {
				c.put(rtnl.Route{Dst: netip.PrefixFrom(a, 32), OIF: 1, Table: 254, Protocol: 107, Type: 1, Scope: 253})
				a = a.Next()
			}
			pod := rtnl.Route{Dst: netip.MustParsePrefix("10.200.0.1/32"), OIF: 7, Table: 254, Protocol: 107, Type: 1, Scope: 253}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				c.put(pod)
				if mode == "walked" {
					delete(c.few, 7)
					c.crowded[7] = true
				}
				b.StartTimer()
				n := 0
				if !c.forgetLink(7, false, func(int) bool { return false }, func(route.Key) { n++ }) || n != 1 {
					b.Fatalf("forgot %d routes", n)
				}
			}
		})
	}
}
