package pinned

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/internal/bpfsys"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// BenchmarkSetTransition measures Backend.Set for a posture flip (5→1 and
// 1→5, alternating, with a 32-prefix allowlist swapped each time and the
// egress program attached to a cgroup, so every Set re-checks the link),
// plus a no-op Set, over 2,000 samples each in one iteration. Needs root.
func BenchmarkSetTransition(b *testing.B) {
	requireBPF(b)
	const samples = 2000
	dir := testPinDir(b)
	mnt, err := bpfsys.Cgroup2Mount()
	if err != nil {
		needs.Unavailable(b, "no cgroup2 mount: %v", err)
	}
	cg := filepath.Join(mnt, "kedge-bpfmap-bench-"+randSuffix(b))
	if err := os.Mkdir(cg, 0o755); err != nil {
		needs.Unavailable(b, "cannot create a cgroup: %v", err)
	}
	b.Cleanup(func() { os.Remove(cg) })
	be := openBackend(b, dir)
	ctx := context.Background()

	allow := func(base byte) bpfmap.Config {
		c := bpfmap.Config{CgroupPath: cg}
		for i := range 32 {
			c.Allowlist = append(c.Allowlist, netipPrefix(base, byte(i)))
		}
		return c
	}
	normal, lockdown := allow(10), allow(20)
	normal.Level, lockdown.Level = 5, 1
	if err := be.Set(ctx, normal); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			needs.Unavailable(b, "kernel cannot pin cgroup links: %v", err)
		}
		b.Fatal(err)
	}

	var flips, noops []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range samples {
			cfg := lockdown
			if i%2 == 1 {
				cfg = normal
			}
			t0 := time.Now()
			if err := be.Set(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			flips = append(flips, time.Since(t0))
			t0 = time.Now()
			if err := be.Set(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			noops = append(noops, time.Since(t0))
		}
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), name+"-p50-ns")
		b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), name+"-p99-ns")
	}
	report(flips, "flip")
	report(noops, "noop")
}

func netipPrefix(a, b byte) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, a, b, 0}), 24)
}
