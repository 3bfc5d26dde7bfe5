package store

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// The store benchmarks run their whole workload in one iteration (make
// bench uses -benchtime 1x) and report percentiles as metrics.

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)*99/100]
}

// BenchmarkCommitSingleLeaf measures durable single-leaf commit latency,
// fsync included, over 2,000 commits into a store that already holds
// 10,000 routes.
func BenchmarkCommitSingleLeaf(b *testing.B) {
	for range b.N {
		s, err := Open(b.TempDir(), kedgeSchema(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		mustCommit(b, s, routeOps(b, 10000)...)
		const n = 2000
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			op := upd(b, kroute(i%10000)+"/config/owner", str(strconv.Itoa(i)))
			start := time.Now()
			if _, err := s.Commit(context.Background(), []Op{op}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		p50, p99 := percentiles(lat)
		b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
		s.Close()
	}
}

// routeOps builds one update per route of Kedge's schema, each a JSON
// route config as a gNMI client would send it.
func routeOps(b testing.TB, n int) []Op {
	ops := make([]Op, 0, n)
	for i := 0; i < n; i++ {
		ops = append(ops, Op{Kind: OpUpdate, Path: path(b, kroute(i)+"/config"),
			Val: js(`{"next-hop":"192.0.2.1","device":"eth0","metric":` + strconv.Itoa(i%1000) + `,"class":"pod"}`)})
	}
	return ops
}

func kroute(i int) string {
	return "/kedge/routes/route[prefix=10." + itoa(i/65536%256) + "." + itoa(i/256%256) + "." + itoa(i%256) + "/32][table=254]"
}

func kedgeSchema(b testing.TB) *tree.Schema {
	s, err := yang.Schema()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// Benchmark100kRoutes commits 100,000 routes in one transaction and
// reports the commit time and the resident memory the tree grew by.
func Benchmark100kRoutes(b *testing.B) {
	for range b.N {
		const n = 100000
		s, err := Open(b.TempDir(), kedgeSchema(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		rss0, heap0 := memNow()
		ops := routeOps(b, n)
		cpu0 := cpuTime()
		start := time.Now()
		if _, err := s.Commit(context.Background(), ops); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		cpu := cpuTime() - cpu0
		ops = nil
		// A later small commit lets the feed drop the big one, as it does
		// in steady state; measure both with and without it retained.
		rss1, heap1 := memNow()
		s.feed.budget = 1
		mustCommit(b, s, upd(b, kroute(0)+"/config/owner", str("x")))
		rss2, heap2 := memNow()
		b.ReportMetric(took.Seconds(), "commit-s")
		// CPU time (all threads, GC included) is steadier than wall time on
		// a shared machine: it does not count waiting for a core.
		b.ReportMetric(cpu.Seconds(), "commit-cpu-s")
		b.ReportMetric(float64(rss1-rss0)/n, "rss-B/route(feed-retained)")
		b.ReportMetric(float64(rss2-rss0)/n, "rss-B/route")
		b.ReportMetric(float64(heap1-heap0)/n, "heap-B/route(feed-retained)")
		b.ReportMetric(float64(heap2-heap0)/n, "heap-B/route")
		s.Close()
	}
}

// memNow returns resident set size and live heap after a full GC, with
// freed memory returned to the OS so RSS reflects what is live.
func memNow() (rss, heap int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		f := strings.Fields(string(data))
		if len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return rss, int64(ms.HeapAlloc)
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
