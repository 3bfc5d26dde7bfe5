package kernel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
)

// randomConfig draws a Config with unique keys from a small pool of
// destinations, so consecutive Configs overlap, differ in attributes, and
// both add and remove routes and rules.
func randomConfig(rng *rand.Rand, dev string) route.Config {
	var cfg route.Config
	seen := map[route.Key]bool{}
	for range rng.IntN(24) {
		var r route.Route
		if rng.IntN(4) == 0 {
			r.Dst = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x20, 15: byte(rng.IntN(8))}), 128-rng.IntN(2)*64).Masked()
			if rng.IntN(2) == 0 {
				r.Gateway = addr("fd00::2")
			}
		} else {
			r.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 90, byte(rng.IntN(10)), 0}), 24)
			if rng.IntN(2) == 0 {
				r.Gateway = netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + rng.IntN(3))})
			}
			if rng.IntN(4) == 0 {
				r.Src = addr("10.0.0.1")
			}
		}
		r.Device = dev
		r.Table = []uint32{0, 100, 1000}[rng.IntN(3)]
		r.Metric = uint32(rng.IntN(3))
		if seen[r.Key()] {
			continue
		}
		seen[r.Key()] = true
		cfg.Routes = append(cfg.Routes, r)
	}
	rules := map[route.Rule]bool{}
	for range rng.IntN(4) {
		r := route.Rule{Priority: uint32(2000 + rng.IntN(4)), Table: uint32(100 + rng.IntN(3))}
		if rng.IntN(2) == 0 {
			r.Src = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 91, byte(rng.IntN(3)), 0}), 24)
		}
		if !rules[r] {
			rules[r] = true
			cfg.Rules = append(cfg.Rules, r)
		}
	}
	return cfg
}

func renderRules(rules []route.Rule) []string {
	out := []string{}
	for _, r := range rules {
		n := r.Normalize()
		from := "all"
		if n.Src.IsValid() {
			from = n.Src.String()
		}
		out = append(out, fmt.Sprintf("%d:\tfrom %s lookup %d", n.Priority, from, n.Table))
	}
	slices.Sort(out)
	return out
}

func TestRandomOrderConverges(t *testing.T) {
	n := newTestNet(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	configs := make([]route.Config, 12)
	for i := range configs {
		configs[i] = randomConfig(rng, n.Dev)
	}
	b := newBackend(t, n.NS)
	ctx := context.Background()
	for step := range 40 {
		cfg := configs[rng.IntN(len(configs))]
		if step == 20 {
			// A restart midway: the new backend must converge from adopted state.
			b.Close()
			b = newBackend(t, n.NS)
		}
		if err := b.Set(ctx, cfg); err != nil {
			t.Fatalf("step %d: set: %v", step, err)
		}
		if diff := cmp.Diff(want(cfg.Routes, n.Dev), ipShow(t, n.NS)); diff != "" {
			t.Fatalf("step %d: routes (-want +got):\n%s", step, diff)
		}
		got := ourRules(t, n.NS)
		slices.Sort(got)
		if diff := cmp.Diff(renderRules(cfg.Rules), append([]string{}, got...)); diff != "" {
			t.Fatalf("step %d: rules (-want +got):\n%s", step, diff)
		}
	}
}
