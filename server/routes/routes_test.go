package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/reconcile"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// routesRig is a store, the route applier over a recording fake and the
// reconciler as the routes component wires them.
type routesRig struct {
	st   *store.Store
	fake *routetest.Fake
	ap   *applier
	rec  *reconcile.Reconciler[intent.RouteSet]
	stop func() // stops the reconciler (and waits for it)
}

func newRoutesRig(t *testing.T) *routesRig { return newRoutesRigChunk(t, 0) }

// newRoutesRigChunk is newRoutesRig with the intent reading bulk changes
// in parts of chunk entries (0: whole).
func newRoutesRigChunk(t *testing.T, chunk int) *routesRig {
	t.Helper()
	st := yangtest.Store(t)
	r := &routesRig{st: st, fake: routetest.New("eth0", "veth1")}
	r.start(t, chunk)
	return r
}

// start runs a new applier and reconciler, with a cache of their own,
// over the rig's store and fake: a daemon (re)starting over the kernel's
// routes.
func (r *routesRig) start(t *testing.T, chunk int) {
	t.Helper()
	cache := &intent.RouteCache{Chunk: chunk}
	r.ap = newApplier(r.fake, r.st, testLogger(t), cache)
	o := options(slog.New(slog.DiscardHandler), cache)
	o.RetryMin, o.RetryMax = time.Millisecond, 5*time.Millisecond
	r.rec = reconcile.New[intent.RouteSet](r.st, nil, r.ap, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.rec.Run(ctx)
	}()
	r.stop = func() {
		cancel()
		<-done
		r.ap.wait()
	}
	t.Cleanup(r.stop)
}

func (r *routesRig) commit(t *testing.T, kind store.OpKind, leaves map[string]*gpb.TypedValue) {
	t.Helper()
	var ops []store.Op
	for p, v := range leaves {
		ops = append(ops, store.Op{Kind: kind, Path: gp(t, p).Elem, Val: v})
	}
	if _, err := r.st.Commit(context.Background(), ops); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func str(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func routeEntry(prefix string) string { return "/kedge/routes/route[prefix=" + prefix + "][table=254]" }

func routeConfig(prefix, dev, class string) map[string]*gpb.TypedValue {
	base := routeEntry(prefix) + "/config/"
	return map[string]*gpb.TypedValue{base + "prefix": str(prefix), base + "table": uval(254),
		base + "device": str(dev), base + "class": str(class)}
}

func podConfig(id, addr, mode, tier string) map[string]*gpb.TypedValue {
	base := "/kedge/pods/pod[container-id=" + id + "][ifname=eth0]/config/"
	return map[string]*gpb.TypedValue{base + "container-id": str(id), base + "ifname": str("eth0"),
		base + "addresses": jsonIETF(`["` + addr + `"]`), base + "host-ifname": str("veth1"),
		base + "allowed-mode": str(mode), base + "tier": str(tier)}
}

// state reads status and reason of an entry from the tree.
func (r *routesRig) state(t *testing.T, entry string) (string, string) {
	t.Helper()
	var status, reason string
	r.st.Read(func(tr *tree.Tree) error {
		for _, leaf := range []string{"status", "reason"} {
			p, _ := tree.ParsePath(entry + "/state/" + leaf)
			if tgt, ok, _ := tr.Lookup(p); ok && tgt.Node != nil {
				v := tgt.In.Leaf(tgt.Node)
				if leaf == "status" {
					status = v.Str()
				} else {
					reason = v.Str()
				}
			}
		}
		return nil
	})
	return status, reason
}

func (r *routesRig) waitState(t *testing.T, entry, status, reason string) {
	t.Helper()
	waitUntil(t, entry+" "+status, func() bool {
		s, why := r.state(t, entry)
		return s == status && strings.Contains(why, reason) && (reason != "" || why == "")
	})
}

func (r *routesRig) setLevel(t *testing.T, level uint64) {
	t.Helper()
	_, err := r.st.CommitState(context.Background(), []store.Op{{Kind: store.OpUpdate,
		Path: gp(t, "/kedge/posture/state/effective-level").Elem, Val: uval(level)}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRouteState: routes and pods get installed/active, withheld (with
// the accord's reason) and failed (with the backend's error) in state,
// and back, without the state writes triggering reconciles.
func TestRouteState(t *testing.T) {
	r := newRoutesRig(t)
	r.commit(t, store.OpUpdate, routeConfig("10.1.0.0/24", "eth0", "underlay"))
	r.commit(t, store.OpUpdate, routeConfig("10.2.0.0/24", "nosuch0", "incident"))
	r.commit(t, store.OpUpdate, podConfig("c1", "10.244.0.5/24", "underlay", "operator"))
	r.commit(t, store.OpUpdate, podConfig("c2", "10.244.0.6/24", "overlay", "operator"))
	configCommits := 4
	pod := func(id string) string { return "/kedge/pods/pod[container-id=" + id + "][ifname=eth0]" }
	r.waitState(t, routeEntry("10.1.0.0/24"), "installed", "")
	r.waitState(t, routeEntry("10.2.0.0/24"), "failed", "unknown device")
	r.waitState(t, pod("c1"), "active", "")
	r.waitState(t, pod("c2"), "active", "")

	r.setLevel(t, 3)
	r.waitState(t, routeEntry("10.1.0.0/24"), "withheld", "posture level 3 (withhold-underlay-below-master): underlay route of tier operator")
	r.waitState(t, pod("c1"), "withheld", "pod in underlay mode of tier operator, below master")
	r.waitState(t, pod("c2"), "active", "")
	r.waitState(t, routeEntry("10.2.0.0/24"), "failed", "unknown device")
	want := []string{"10.244.0.6/32 dev veth1"}
	if d := cmp.Diff(want, fakeRoutes(r.fake)); d != "" {
		t.Errorf("routes at level 3 (-want +got):\n%s", d)
	}

	r.setLevel(t, 5)
	r.waitState(t, routeEntry("10.1.0.0/24"), "installed", "")
	r.waitState(t, pod("c1"), "active", "")

	// Deleted and re-created between two reconciles, an entry still gets
	// its state back.
	base := routeEntry("10.1.0.0/24")
	ops := []store.Op{{Kind: store.OpDelete, Path: gp(t, base).Elem}}
	for p, v := range routeConfig("10.1.0.0/24", "eth0", "underlay") {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: gp(t, p).Elem, Val: v})
	}
	if _, err := r.st.Commit(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	configCommits++
	r.waitState(t, base, "installed", "")

	// A last config commit: once it is reconciled, every earlier state
	// commit has been read from the feed too, and none may have counted.
	r.commit(t, store.OpUpdate, routeConfig("10.3.0.0/24", "eth0", "overlay"))
	configCommits++
	r.waitState(t, routeEntry("10.3.0.0/24"), "installed", "")
	// At most: commits made before Run started watching are not counted.
	// Each state write counting would add one per reconcile, far more.
	if got := r.rec.Stats().Commits; got > configCommits+2 { // + the two effective-level commits
		t.Errorf("reconciler saw %d relevant commits, want at most %d: its own state writes trigger it", got, configCommits+2)
	}
}

func fakeRoutes(f *routetest.Fake) []string {
	var out []string
	for _, r := range f.Routes() {
		out = append(out, r.Dst.String()+" dev "+r.Device)
	}
	return out
}

// TestRouteStateWritesOnlyChanges: a Set that changes one route of many
// writes the state of that one route only.
func TestRouteStateWritesOnlyChanges(t *testing.T) {
	r := newRoutesRig(t)
	ops := []store.Op{}
	for i := range 50 {
		for p, v := range routeConfig(fmt.Sprintf("10.9.%d.0/24", i), "eth0", "underlay") {
			ops = append(ops, store.Op{Kind: store.OpUpdate, Path: gp(t, p).Elem, Val: v})
		}
	}
	if _, err := r.st.Commit(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, routeEntry("10.9.49.0/24"), "installed", "")
	w := r.st.Watch()
	r.commit(t, store.OpUpdate, routeConfig("10.8.0.0/24", "eth0", "underlay"))
	r.waitState(t, routeEntry("10.8.0.0/24"), "installed", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.State {
			if len(c.Changes) != 1 {
				t.Errorf("state commit changed %d leaves, want 1 (the new route's status)", len(c.Changes))
			}
			return
		}
	}
}

func TestItemErrorsOnly(t *testing.T) {
	re := &route.RouteError{Route: route.Route{Dst: netip.MustParsePrefix("10.0.0.0/8")}, Err: route.ErrUnknownDevice}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{errors.Join(re), true},
		{errors.Join(re, &route.InterfaceError{Name: "x", Err: route.ErrNotOwned}), true},
		{errors.Join(re, errors.New("set routes: socket closed")), false},
		{errors.New("set routes: context canceled"), false},
	} {
		if got := itemErrorsOnly(c.err); got != c.want {
			t.Errorf("itemErrorsOnly(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRouteStateEntryGone: state for an entry deleted since the intent was
// read does not stop the state of the others.
func TestRouteStateEntryGone(t *testing.T) {
	r := newRoutesRig(t)
	r.commit(t, store.OpUpdate, routeConfig("10.5.0.0/24", "eth0", "overlay"))
	r.waitState(t, routeEntry("10.5.0.0/24"), "installed", "")
	w := &stateWriter{written: newStateRecord(0)}
	w.put(stateKey{a: "10.5.0.0/24", table: 254}, stateVal{statusFailed, "test"}, true)
	w.put(stateKey{a: "10.6.0.0/24", table: 254}, stateVal{status: statusInstalled}, false) // no such entry
	r.ap.mu.Lock()
	err := r.ap.commitState(context.Background(), w.ops)
	r.ap.mu.Unlock()
	if err != nil {
		t.Fatalf("commit state: %v", err)
	}
	if s, why := r.state(t, routeEntry("10.5.0.0/24")); s != statusFailed || why != "test" {
		t.Errorf("state %q %q, want failed test", s, why)
	}
	if _, err := r.st.CommitState(context.Background(), w.ops[1:]); err == nil {
		t.Error("state of a missing entry committed: the retry path is not exercised")
	}
}

// TestRouteStateFollowsChurn: routes added, failing on an unknown device,
// fixed, and deleted in random order; after each burst every entry's
// state must be exactly its route's outcome (the state writer skips
// entries it believes unchanged, so a wrong belief would show here).
func TestRouteStateFollowsChurn(t *testing.T) {
	r := newRoutesRig(t)
	rng := rand.New(rand.NewPCG(3, 4))
	devs := []string{"eth0", "veth1", "nodev0"}
	cur := map[string]string{} // prefix -> device
	for step := range 60 {
		for range 1 + rng.IntN(4) {
			p := fmt.Sprintf("10.7.%d.0/24", rng.IntN(30))
			if _, ok := cur[p]; ok && rng.IntN(3) == 0 {
				r.commit(t, store.OpDelete, map[string]*gpb.TypedValue{routeEntry(p): nil})
				delete(cur, p)
				continue
			}
			d := devs[rng.IntN(len(devs))]
			r.commit(t, store.OpUpdate, routeConfig(p, d, "underlay"))
			cur[p] = d
		}
		waitUntil(t, fmt.Sprintf("step %d: every entry's state", step), func() bool {
			for p, d := range cur {
				s, why := r.state(t, routeEntry(p))
				want := statusInstalled
				if d == "nodev0" {
					want = statusFailed
				}
				if s != want || (want == statusFailed) != (why != "") {
					return false
				}
			}
			return true
		})
	}
}
