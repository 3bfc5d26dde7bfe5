package intent

import (
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

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

// BenchmarkAFTBulkChange times the change set after a bulk load's last
// batch (72,000 new IPv4 entries into 28,000) and after the status the
// applier then writes for them, each with the cache observing the
// commit; entries whose status went would be read again by one walk of
// the lists or by a lookup each (aftWalkMin 0), side by side. CPU time of
// the process (the machine is shared), after a collection of the setup's
// garbage.
func BenchmarkAFTBulkChange(b *testing.B) {
	for _, way := range []string{"walk", "lookup"} {
		b.Run(way, func(b *testing.B) {
			if way == "lookup" {
				defer func(m int) { aftWalkMin = m }(aftWalkMin)
				aftWalkMin = 0
			}
			var batchDur, statusDur time.Duration
			runs := 0
			for b.Loop() {
				ls := aftBase()
				a := netip.MustParseAddr("10.128.0.1")
				for range 28_000 {
					ls = append(ls, aftLeaves(a.String()+"/32", 1, "op")...)
					a = a.Next()
				}
				tr := buildTree(b, ls)
				acc, _ := accord.Default(5)
				var cache RouteCache
				if _, err := cache.Routes(tr, acc, 0); err != nil {
					b.Fatal(err)
				}
				var batch, status []op
				for range 72_000 {
					for _, l := range aftLeaves(a.String()+"/32", 1, "op") {
						batch = append(batch, op{path: l.path, val: l.val})
					}
					status = append(status, op{path: aftEntry(a.String()+"/32") + "/state/status", val: s("installed"), state: true})
					a = a.Next()
				}
				t := &testing.T{}
				changes, ok := applyOps(t, tr, batch)
				if !ok {
					b.Fatal("batch refused")
				}
				runtime.GC() // the setup's garbage is not the change set's
				start := cpuTime(b)
				cache.Observe(1, false, changes)
				set, err := cache.Changes(tr, acc, 1)
				batchDur += cpuTime(b) - start
				if err != nil || set.Delta == nil || len(set.Delta.Patch.Put) != 72_000 {
					b.Fatalf("not a 72,000-entry change set (err %v)", err)
				}
				if changes, ok = applyOps(t, tr, status); !ok {
					b.Fatal("status refused")
				}
				runtime.GC()
				start = cpuTime(b)
				cache.Observe(2, true, changes)
				set, err = cache.Changes(tr, acc, 2)
				statusDur += cpuTime(b) - start
				if err != nil || set.Delta == nil || len(set.Delta.Patch.Put) != 0 {
					b.Fatalf("status gave a change (err %v)", err)
				}
				runs++
			}
			b.ReportMetric(float64(batchDur.Microseconds())/1000/float64(runs), "batch-cpu-ms")
			b.ReportMetric(float64(statusDur.Microseconds())/1000/float64(runs), "status-cpu-ms")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
