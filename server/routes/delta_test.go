package routes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// TestPatchedRoutesConverge runs the reconciler, its change sets and the
// applier's patches over the recording fake through random commits
// (routes added, changed, deleted, some on a device that does not exist,
// a pod moving, posture level changes) and checks after each that the
// backend's routes and every route entry's state converge to what the
// full recomputation (intent.Routes) says, and that most commits were
// patched in rather than Set whole.
func TestPatchedRoutesConverge(t *testing.T) {
	r := newRoutesRig(t)
	rng := rand.New(rand.NewPCG(5, 6))
	pool := 300
	prefix := func() string { i := rng.IntN(pool); return fmt.Sprintf("10.50.%d.%d/32", i/256, i%256) }
	classes := []string{"overlay", "underlay", "management", "monitoring", "incident"}
	var pre []store.Op
	for i := range 200 {
		for p, v := range routeConfig(fmt.Sprintf("10.50.%d.%d/32", i/256, i%256), "eth0", classes[i%len(classes)]) {
			pre = append(pre, store.Op{Kind: store.OpUpdate, Path: gp(t, p).Elem, Val: v})
		}
	}
	if _, err := r.st.Commit(context.Background(), pre); err != nil {
		t.Fatal(err)
	}
	r.commit(t, store.OpUpdate, podConfig("c1", "10.244.0.5/32", "underlay", "operator"))
	var last, failing string
	defer func() {
		if t.Failed() {
			t.Logf("last difference: %s", last)
		}
	}()
	for step := range 120 {
		switch what := rng.IntN(10); {
		case failing != "":
			// A route that failed is deleted: its failure made every
			// reconcile since a whole Set (a Patch needs every item as
			// desired), and they are patched in again.
			r.commit(t, store.OpDelete, map[string]*gpb.TypedValue{routeEntry(failing): nil})
			failing = ""
		case what < 5:
			r.commit(t, store.OpUpdate, routeConfig(prefix(), "eth0", classes[rng.IntN(len(classes))]))
		case what < 6:
			failing = prefix()
			r.commit(t, store.OpUpdate, routeConfig(failing, "nosuch0", classes[rng.IntN(len(classes))]))
		case what < 8:
			r.commit(t, store.OpDelete, map[string]*gpb.TypedValue{routeEntry(prefix()): nil})
		case what < 9:
			r.commit(t, store.OpUpdate, podConfig("c1", fmt.Sprintf("10.244.0.%d/32", rng.IntN(50)), "underlay", "operator"))
		default:
			r.setLevel(t, uint64(3+rng.IntN(3)))
		}
		waitUntil(t, fmt.Sprintf("step %d converged", step), func() bool { last = r.converged(t); return last == "" })
	}
	patches, sets := len(r.fake.Patches()), len(r.fake.Calls())
	if patches < 70 {
		t.Errorf("%d patches and %d whole Sets in 120 commits: the change sets were not patched in", patches, sets)
	}
	t.Logf("%d patches, %d whole Sets", patches, sets)
}

// converged says how the fake's routes or a route entry's state differ
// from what the full intent and the fake's outcome make them ("" when
// they do not).
func (r *routesRig) converged(t *testing.T) string {
	t.Helper()
	var want intent.RouteSet
	r.st.Read(func(tr *tree.Tree) error {
		want, _ = intent.Routes(tr, accord.Current(tr))
		return nil
	})
	var routes []string
	type st struct{ status, reason string }
	states := map[string]st{}
	// A key whose route fails keeps what the kernel had for it (a route
	// changed to a missing device stays as it was).
	failed := map[string]bool{}
	for i, rt := range want.Config.Routes {
		if rt.Device == "nosuch0" {
			failed[rt.Dst.String()] = true
			if o := want.Origins[i]; !o.IsPod() {
				states[routeEntry(o.Prefix)] = st{"failed", "unknown device"}
			}
			continue
		}
		routes = append(routes, rt.Dst.String()+" dev "+rt.Device)
		if o := want.Origins[i]; !o.IsPod() && !o.IsOverlay() {
			states[routeEntry(o.Prefix)] = st{"installed", ""}
		}
	}
	for _, w := range want.Withheld {
		if !w.Origin.IsPod() {
			states[routeEntry(w.Origin.Prefix)] = st{"withheld", w.Reason}
		} else {
			states[podEntry(w.Origin.Pod.ContainerID)] = st{"withheld", w.Reason}
		}
	}
	for _, o := range want.Origins {
		if o.IsPod() {
			states[podEntry(o.Pod.ContainerID)] = st{"active", ""}
		}
	}
	slices.Sort(routes)
	got := slices.DeleteFunc(fakeRoutes(r.fake), func(s string) bool { return failed[strings.Fields(s)[0]] })
	slices.Sort(got)
	if !slices.Equal(got, routes) {
		var extra, missing []string
		for _, g := range got {
			if !slices.Contains(routes, g) {
				extra = append(extra, g)
			}
		}
		for _, w := range routes {
			if !slices.Contains(got, w) {
				missing = append(missing, w)
			}
		}
		return fmt.Sprintf("routes: %v extra, %v missing", extra, missing)
	}
	for entry, w := range states {
		s, why := r.state(t, entry)
		if s != w.status || !strings.Contains(why, w.reason) || (w.reason == "" && why != "") {
			return fmt.Sprintf("%s: %s %q, want %s %q", entry, s, why, w.status, w.reason)
		}
	}
	return ""
}

func podEntry(id string) string { return "/kedge/pods/pod[container-id=" + id + "][ifname=eth0]" }
