package kernel_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestFastPlanMatchesKernel drives one backend through random small
// changes to a Config kept in key order (routes added, removed, changed,
// failing on a missing device, IPv6 among them), with the kernel checked
// after every Set: the fast path must leave exactly what a full plan
// would, and must actually be taken. Out-of-order Configs and outside
// changes must fall back to the full plan and still converge.
func TestFastPlanMatchesKernel(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]netip.Prefix, 0, 48)
	for i := range 40 {
		pool = append(pool, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 90, byte(i / 8), byte(i%8) * 32}), 27))
	}
	for i := range 8 {
		pool = append(pool, netip.MustParsePrefix(fmt.Sprintf("fd90:%x::/64", i)))
	}
	variant := func(p netip.Prefix) route.Route {
		r := route.Route{Dst: p, Device: n.Dev}
		switch rng.IntN(6) {
		case 0:
			if p.Addr().Is4() {
				r.Gateway = addr("10.0.0.2")
			} else {
				r.Gateway = addr("fd00::2")
			}
		case 1:
			r.Table = 100
		case 2:
			r.Device = "nosuchdev0" // fails, and is retried every Set
		}
		return r
	}
	byKey := func(a, c route.Route) int {
		ka, kc := a.Key(), c.Key()
		return cmpKeys(ka, kc)
	}
	cur := map[netip.Prefix]route.Route{}
	kernel := map[route.Key]route.Route{}
	incremental := 0
	var buf []route.Route
	const steps = 120
	for step := range steps {
		for range 1 + rng.IntN(3) {
			p := pool[rng.IntN(len(pool))]
			if _, ok := cur[p]; ok && rng.IntN(3) == 0 {
				delete(cur, p)
			} else {
				cur[p] = variant(p)
			}
		}
		// One buffer for every step's Config, as the routes intent reuses
		// its output: Set must keep its own copy.
		buf = buf[:0]
		for _, r := range cur {
			buf = append(buf, r)
		}
		cfg := route.Config{Routes: buf}
		slices.SortFunc(cfg.Routes, byKey)
		shuffled := step%40 == 39
		if shuffled {
			rng.Shuffle(len(cfg.Routes), func(i, j int) { cfg.Routes[i], cfg.Routes[j] = cfg.Routes[j], cfg.Routes[i] })
		}
		outside := step%30 == 29
		if outside {
			// Someone else deletes one of our routes: the cache goes, and
			// with it the fast path, and the route comes back.
			for _, r := range cfg.Routes {
				if r.Device == n.Dev && r.Table == 0 && r.Dst.Addr().Is4() && !r.Gateway.IsValid() {
					ip(t, "-n", n.NS, "route", "del", r.Dst.String(), "proto", "107")
					delete(kernel, r.Key())
					break
				}
			}
		}
		err := b.Set(ctx, cfg)
		st := b.Status()
		// The kernel holds every installed route, and for a key whose
		// route failed, whatever it held before (Set never deletes a key
		// the Config has).
		next := map[route.Key]route.Route{}
		for i, r := range cfg.Routes {
			if r.Device == "nosuchdev0" {
				if st.Routes[i].State != route.StateFailed || !errors.Is(st.Routes[i].Err, route.ErrUnknownDevice) {
					t.Fatalf("step %d: %s: status %v %v, want failed: unknown device", step, r, st.Routes[i].State, st.Routes[i].Err)
				}
				if old, ok := kernel[r.Key()]; ok {
					next[r.Key()] = old
				}
				continue
			}
			if st.Routes[i].State != route.StateInstalled {
				t.Fatalf("step %d: %s: status %v %v, want installed", step, r, st.Routes[i].State, st.Routes[i].Err)
			}
			next[r.Key()] = r
		}
		kernel = next
		var ok []route.Route
		for _, r := range kernel {
			ok = append(ok, r)
		}
		if err != nil && !errors.Is(err, route.ErrUnknownDevice) {
			t.Fatalf("step %d: set: %v", step, err)
		}
		checkKernel(t, n, ok)
		if t.Failed() {
			t.Fatalf("step %d: kernel differs (incremental %t)", step, st.Incremental)
		}
		if st.Incremental {
			incremental++
			if shuffled || outside {
				t.Fatalf("step %d: planned incrementally from an unordered Config or a stale cache", step)
			}
		}
	}
	if incremental < steps*3/4 {
		t.Errorf("fast path taken in %d of %d Sets, want most", incremental, steps)
	}
}

// cmpKeys is the backend's key order: table, family, address, prefix
// length, metric.
func cmpKeys(a, b route.Key) int {
	switch {
	case a.Table != b.Table:
		return int(a.Table) - int(b.Table)
	case a.Dst.Addr() != b.Dst.Addr():
		return a.Dst.Addr().Compare(b.Dst.Addr())
	case a.Dst.Bits() != b.Dst.Bits():
		return a.Dst.Bits() - b.Dst.Bits()
	}
	return int(a.Metric) - int(b.Metric)
}
