package routes

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// TestComponentLifecycle runs the component as the daemon does, over the
// recording fake: nothing reaches the backend before Ready; then the tree
// does; a drift the backend reports makes it Set again with no tree
// change; the posture step applies the target accord; and a cancelled
// parent context stops the loops, after which Close returns.
func TestComponentLifecycle(t *testing.T) {
	st := yangtest.Store(t)
	fake := routetest.New("eth0")
	ready, waiting := make(chan struct{}), make(chan struct{}, 2)
	c := New(Config{Backend: fake, Store: st, Logger: testLogger(t),
		Ready: func(ctx context.Context) bool {
			waiting <- struct{}{}
			select {
			case <-ready:
				return true
			case <-ctx.Done():
				return false
			}
		}})
	r := &routesRig{st: st, fake: fake}
	r.commit(t, store.OpUpdate, routeConfig("10.1.0.0/24", "eth0", "underlay"))

	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Both loops (reconciler, drift watch) wait at the gate: nothing has
	// reached the backend.
	<-waiting
	<-waiting
	if n := len(fake.Calls()); n != 0 {
		t.Fatalf("%d Sets before Ready", n)
	}
	close(ready)
	r.waitState(t, routeEntry("10.1.0.0/24"), "installed", "")

	before := len(fake.Calls())
	fake.Drift()
	waitUntil(t, "a Set after the drift", func() bool { return len(fake.Calls()) > before })

	// The posture step applies the target accord (level 3 withholds the
	// operator-tier underlay route) through the same applier and state.
	a, err := accord.Effective(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step().Apply(context.Background(), posture.Transition{From: 5, To: 3, Accord: a}); err != nil {
		t.Fatalf("step: %v", err)
	}
	if d := cmp.Diff([]string(nil), fakeRoutes(fake)); d != "" {
		t.Errorf("routes after the level-3 step (-want +got):\n%s", d)
	}
	if s, why := r.state(t, routeEntry("10.1.0.0/24")); s != "withheld" || why == "" {
		t.Errorf("state after the step = %s %q, want withheld with a reason", s, why)
	}

	cancel() // the daemon's context ends: the loops stop on their own
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKickedChangesArePatched: the backend's watch kicks the reconciler
// on every link event (two per pod: its veth made, then set up), racing
// the change feed. Each route committed beside a kick must still be
// patched in: before the reconciler caught the intent up with the feed,
// a kicked reconcile often read a tree a commit ahead of what the intent
// had observed and applied the whole Config (at 100,000 routes, for one
// pod).
func TestKickedChangesArePatched(t *testing.T) {
	st := yangtest.Store(t)
	fake := routetest.New("eth0")
	c := New(Config{Backend: fake, Store: st, Logger: testLogger(t)})
	r := &routesRig{st: st, fake: fake}
	r.commit(t, store.OpUpdate, routeConfig("10.1.0.0/24", "eth0", "underlay"))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r.waitState(t, routeEntry("10.1.0.0/24"), "installed", "")
	before := c.ApplyStats()
	const n = 60
	for i := range n {
		prefix := fmt.Sprintf("10.2.%d.0/24", i)
		fake.Kick()
		r.commit(t, store.OpUpdate, routeConfig(prefix, "eth0", "underlay"))
		fake.Kick()
		r.waitState(t, routeEntry(prefix), "installed", "")
	}
	after := c.ApplyStats()
	if whole := after.WholeSets - before.WholeSets; whole != 0 {
		t.Errorf("%d whole Sets for %d kicked one-route commits, want 0 (fallbacks %v)", whole, n, after.Fallbacks)
	}
	if p := after.Patches - before.Patches; p < n {
		t.Errorf("%d Patches for %d one-route commits", p, n)
	}
}
