package store

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
)

// BenchmarkAFTEntries writes 100,000 /kedge/aft IPv4 entries as the gRIBI
// writer does (three config leaves each, in commits of 1,000), then
// their status as the route applier does (a state commit of 1,000 at a
// time), leaf by leaf, as one Entry per entry and as one Keyed per entry
// (named by its typed key), side by side: the CPU and the bytes allocated
// per entry, collector included.
func BenchmarkAFTEntries(b *testing.B) {
	for _, how := range []string{"leaves", "entry", "keyed"} {
		b.Run(how, func(b *testing.B) { benchAFTEntries(b, how) })
	}
}

func benchAFTEntries(b *testing.B, how string) {
	const total, per = 100_000, 1_000
	ctx := context.Background()
	aft := kedgepath.Root().Kedge().Aft()
	for range b.N {
		s, err := Open(b.TempDir(), kedgeSchema(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		sc := aft.Sessions().Session("s1").Config()
		mustCommit(b, s, Update(sc.Id(), "s1"), Update(sc.Identity(), "bench"))
		prefixes := make([]string, total)
		a := netip.MustParseAddr("10.128.0.1")
		for i := range prefixes {
			prefixes[i] = netip.PrefixFrom(a, 32).String()
			a = a.Next()
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		alloc0, cpu0 := ms.TotalAlloc, cpuTime()
		for i := 0; i < total; i += per {
			ops := make([]Op, 0, 3*per)
			for _, p := range prefixes[i : i+per] {
				if how == "keyed" {
					c := aft.Ipv4Entries().Ipv4EntryBelow().Config()
					ops = append(ops, Keyed(aft.Ipv4Entries().Ipv4EntryRef(p), Set(c.Prefix(), p), Set(c.NextHopGroup(), 1), Set(c.Session(), "s1")))
					continue
				}
				e := aft.Ipv4Entries().Ipv4Entry(p)
				c := e.Config()
				if how == "entry" {
					ops = append(ops, Entry(e, Set(c.Prefix(), p), Set(c.NextHopGroup(), 1), Set(c.Session(), "s1")))
				} else {
					ops = append(ops, Update(c.Prefix(), p), Update(c.NextHopGroup(), 1), Update(c.Session(), "s1"))
				}
			}
			if _, err := s.Commit(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&ms)
		alloc1, cpu1 := ms.TotalAlloc, cpuTime()
		for i := 0; i < total; i += per {
			ops := make([]Op, 0, per)
			for _, p := range prefixes[i : i+per] {
				if how == "keyed" {
					st := aft.Ipv4Entries().Ipv4EntryBelow().State().Status()
					ops = append(ops, Keyed(aft.Ipv4Entries().Ipv4EntryRef(p), Set(st, kedgepath.AftStatusInstalled)))
					continue
				}
				e := aft.Ipv4Entries().Ipv4Entry(p)
				st := Update(e.State().Status(), kedgepath.AftStatusInstalled)
				if how == "entry" {
					st = Entry(e, Set(e.State().Status(), kedgepath.AftStatusInstalled))
				}
				ops = append(ops, st)
			}
			if _, err := s.CommitState(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&ms)
		alloc2, cpu2 := ms.TotalAlloc, cpuTime()
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/total, "config-cpu-µs/entry")
		b.ReportMetric(float64((cpu2-cpu1).Microseconds())/total, "state-cpu-µs/entry")
		b.ReportMetric(float64(alloc1-alloc0)/total, "config-B/entry")
		b.ReportMetric(float64(alloc2-alloc1)/total, "state-B/entry")
		s.Close()
	}
}
