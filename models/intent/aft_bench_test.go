package intent

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/guildhouse-co/kedge/models/accord"
)

// BenchmarkAFTOneChange times the intent a reconcile computes after a
// gRIBI commit replacing one IPv4 entry (its next-hop group moves between
// 1 and 2) among 1,000 and 100,000, side by side: the change set
// (Changes) and the whole intent from the same kind of cache (Routes,
// what every reconcile computed while /kedge/aft held entries).
func BenchmarkAFTOneChange(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		ls := aftBase()
		a := netip.MustParseAddr("10.128.0.1")
		for range n {
			ls = append(ls, aftLeaves(a.String()+"/32", 1, "op")...)
			a = a.Next()
		}
		tr := buildTree(b, ls)
		acc, _ := accord.Default(5)
		nhg := "/kedge/aft/ipv4-entries/ipv4-entry[prefix=10.128.0.1/32]/config/next-hop-group"
		for _, way := range []string{"changes", "whole"} {
			var cache RouteCache
			var seq uint64
			if _, err := cache.Routes(tr, acc, seq); err != nil {
				b.Fatal(err)
			}
			b.Run(strconv.Itoa(n)+"/"+way, func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					changes := setLeaf(b, tr, nhg, u(uint64(2-i%2)))
					seq++
					cache.Observe(seq, false, changes)
					b.StartTimer()
					if way == "whole" {
						if set, err := cache.Routes(tr, acc, seq); err != nil || len(set.Config.Routes) != n {
							b.Fatalf("%d routes, err %v", len(set.Config.Routes), err)
						}
						continue
					}
					if set, err := cache.Changes(tr, acc, seq); err != nil || set.Delta == nil || len(set.Delta.Patch.Put) != 1 {
						b.Fatalf("not a one-entry change set (err %v)", err)
					}
				}
			})
		}
	}
}
