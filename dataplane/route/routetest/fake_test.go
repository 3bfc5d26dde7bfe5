package routetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// The fake and the real backend both fit the contract.
var (
	_ route.Backend = (*Fake)(nil)
	_ route.Backend = (*kernel.Backend)(nil)
)

func strs[T interface{ String() string }](xs []T) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, x.String())
	}
	slices.Sort(out)
	return out
}

func randomConfig(rng *rand.Rand) route.Config {
	var cfg route.Config
	seen := map[route.Key]bool{}
	for range rng.IntN(30) {
		r := route.Route{
			Dst:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(rng.IntN(12)), 0}), 24),
			Gateway: netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + rng.IntN(3))}),
			Device:  "eth0",
			Table:   uint32(rng.IntN(2) * 100),
			Metric:  uint32(rng.IntN(2)),
		}
		if !seen[r.Key()] {
			seen[r.Key()] = true
			cfg.Routes = append(cfg.Routes, r)
		}
	}
	return cfg
}

func TestRandomOrderConverges(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	configs := make([]route.Config, 20)
	for i := range configs {
		configs[i] = randomConfig(rng)
	}
	f := New("eth0")
	for step := range 200 {
		cfg := configs[rng.IntN(len(configs))]
		if err := f.Set(context.Background(), cfg); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if diff := cmp.Diff(strs(cfg.Routes), strs(f.Routes())); diff != "" {
			t.Fatalf("step %d (-want +got):\n%s", step, diff)
		}
	}
	if got := len(f.Calls()); got != 200 {
		t.Errorf("recorded %d calls, want 200", got)
	}
}

func TestFailuresKeepPreviousAndNameTheRoute(t *testing.T) {
	f := New("eth0")
	ctx := context.Background()
	a := route.Route{Dst: netip.MustParsePrefix("10.1.0.0/24"), Device: "eth0"}
	b := route.Route{Dst: netip.MustParsePrefix("10.2.0.0/24"), Device: "eth0"}
	if err := f.Set(ctx, route.Config{Routes: []route.Route{a, b}}); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	f.FailRoute(a.Dst, injected)
	a2 := a
	a2.Metric = 0
	a2.Gateway = netip.MustParseAddr("10.0.0.9")
	unknown := route.Route{Dst: netip.MustParsePrefix("10.3.0.0/24"), Device: "eth9"}
	dup := route.Route{Dst: netip.MustParsePrefix("10.4.0.0/24"), Device: "eth0"}
	err := f.Set(ctx, route.Config{Routes: []route.Route{a2, unknown, dup, dup}})
	for _, want := range []error{injected, route.ErrUnknownDevice, route.ErrDuplicate} {
		if !errors.Is(err, want) {
			t.Errorf("set error %v lacks %v", err, want)
		}
	}
	if !strings.Contains(err.Error(), "10.1.0.0/24") || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("errors do not name their routes: %v", err)
	}
	// a keeps its old form (the change failed), b is gone, nothing else is in.
	if diff := cmp.Diff(strs([]route.Route{a}), strs(f.Routes())); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	st := f.Status()
	if st.Removed != 1 || st.Routes[0].State != route.StateFailed {
		t.Errorf("status %+v", st)
	}

	f.FailNextSet(errors.New("socket gone"))
	if err := f.Set(ctx, route.Config{}); err == nil {
		t.Error("FailNextSet had no effect")
	}
	if len(f.Routes()) != 1 {
		t.Error("a failed Set changed the state")
	}
	f.FailRoute(a.Dst, nil)
	if err := f.Set(ctx, route.Config{Routes: []route.Route{a2}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strs([]route.Route{a2}), strs(f.Routes())); diff != "" {
		t.Errorf("routes after clearing the failure (-want +got):\n%s", diff)
	}
}
