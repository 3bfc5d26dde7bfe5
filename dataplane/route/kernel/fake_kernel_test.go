package kernel_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
)

// TestFakeMatchesKernel feeds the same random Configs, with bad routes
// mixed in, to the fake and to a real namespace: both must hold the same
// routes and report the same per-route states.
func TestFakeMatchesKernel(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	f := routetest.New("lo", n.Dev)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	ctx := context.Background()
	for step := range 15 {
		cfg := randomConfig(rng, n.Dev)
		cfg.Rules = nil
		if rng.IntN(2) == 0 && len(cfg.Routes) > 0 {
			cfg.Routes = append(cfg.Routes, cfg.Routes[0]) // duplicate key
		}
		if rng.IntN(2) == 0 {
			cfg.Routes = append(cfg.Routes, route.Route{Dst: pfx("10.99.0.0/24"), Device: "nosuchdev0"})
		}
		errK, errF := b.Set(ctx, cfg), f.Set(ctx, cfg)
		if (errK == nil) != (errF == nil) {
			t.Fatalf("step %d: kernel error %v, fake error %v", step, errK, errF)
		}
		if diff := cmp.Diff(ipShow(t, n.NS), want(f.Routes(), n.Dev)); diff != "" {
			t.Fatalf("step %d: kernel vs fake (-kernel +fake):\n%s", step, diff)
		}
		sk, sf := b.Status(), f.Status()
		for i := range sk.Routes {
			k, fk := sk.Routes[i], sf.Routes[i]
			if k.State != fk.State || !sameSentinel(k.Err, fk.Err) {
				t.Errorf("step %d route %s: kernel %s %v, fake %s %v", step, cfg.Routes[i], k.State, k.Err, fk.State, fk.Err)
			}
		}
	}
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{route.ErrDuplicate, route.ErrUnknownDevice, route.ErrInvalid} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return (a == nil) == (b == nil)
}
