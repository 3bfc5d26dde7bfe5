package routes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// TestPatchedRoutesConverge runs the reconciler, its change sets and the
// applier's patches over the recording fake through random commits
// (routes added, changed, deleted, some on a device that does not exist,
// a pod moving, posture level changes; gRIBI's entries added, replaced
// and deleted, some on a route's destination or through a group that
// does not exist, a group's next hop changed, a session's tier changed)
// and checks after each that the backend's routes, every route entry's
// and gRIBI entry's state and the programmed-sequence gRIBI's FIB
// acknowledgements wait for converge to what the full recomputation
// (intent.Routes) says, and that most commits were patched in rather
// than Set whole.
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
	r.commit(t, store.OpUpdate, aftBase())
	var aftSeq uint64 // the last commit of /kedge/aft
	aftCommit := func(kind store.OpKind, leaves map[string]*gpb.TypedValue) {
		var ops []store.Op
		for p, v := range leaves {
			ops = append(ops, store.Op{Kind: kind, Path: gp(t, p).Elem, Val: v})
		}
		c, err := r.st.Commit(context.Background(), ops)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if len(c.Changes) > 0 {
			aftSeq = c.Seq
		}
	}
	aftPrefix := func() string {
		if rng.IntN(8) == 0 {
			return prefix() // a route's destination: the route wins
		}
		i := rng.IntN(pool)
		return fmt.Sprintf("10.60.%d.%d/32", i/256, i%256)
	}
	var last, failing string
	defer func() {
		if t.Failed() {
			t.Logf("last difference: %s", last)
		}
	}()
	for step := range 160 {
		switch what := rng.IntN(14); {
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
		case what < 9: // a pod comes, moves or goes
			id := fmt.Sprintf("c%d", 1+rng.IntN(4))
			if rng.IntN(4) == 0 {
				r.commit(t, store.OpDelete, map[string]*gpb.TypedValue{"/kedge/pods/pod[container-id=" + id + "][ifname=eth0]": nil})
				break
			}
			r.commit(t, store.OpUpdate, podConfig(id, fmt.Sprintf("10.244.%s.%d/32", id[1:], rng.IntN(50)),
				[]string{"underlay", "overlay"}[rng.IntN(2)], []string{"operator", "master"}[rng.IntN(2)]))
		case what < 10:
			r.setLevel(t, uint64(3+rng.IntN(3)))
		case what < 12:
			aftCommit(store.OpUpdate, aftIPConfig(aftPrefix(), []uint64{1, 1, 2, 9}[rng.IntN(4)], []string{"op", "ma"}[rng.IntN(2)]))
		case what < 13:
			aftCommit(store.OpDelete, map[string]*gpb.TypedValue{aftIPEntry(aftPrefix()): nil})
		default:
			if rng.IntN(3) == 0 {
				aftCommit(store.OpUpdate, map[string]*gpb.TypedValue{
					"/kedge/aft/sessions/session[id=op]/config/tier": str([]string{"operator", "master"}[rng.IntN(2)])})
			} else {
				aftCommit(store.OpUpdate, map[string]*gpb.TypedValue{
					"/kedge/aft/next-hops/next-hop[index=2]/config/interface": str([]string{"veth1", "eth0"}[rng.IntN(2)])})
			}
		}
		waitUntil(t, fmt.Sprintf("step %d converged", step), func() bool { last = r.converged(t, aftSeq); return last == "" })
	}
	patches, sets := len(r.fake.Patches()), len(r.fake.Calls())
	if patches < 90 {
		t.Errorf("%d patches and %d whole Sets in 160 commits: the change sets were not patched in", patches, sets)
	}
	t.Logf("%d patches, %d whole Sets", patches, sets)
}

// converged says how the fake's routes, a route or gRIBI entry's state
// or the programmed-sequence (at least aftSeq) differ from what the full
// intent and the fake's outcome make them ("" when they do not).
func (r *routesRig) converged(t *testing.T, aftSeq uint64) string {
	t.Helper()
	var want intent.RouteSet
	var programmed uint64
	r.st.Read(func(tr *tree.Tree) error {
		want, _ = intent.Routes(tr, accord.Current(tr))
		programmed, _ = kedgetree.Of(tr).Kedge().Aft().State().ProgrammedSequence()
		return nil
	})
	if programmed < aftSeq {
		return fmt.Sprintf("programmed-sequence %d, want at least %d", programmed, aftSeq)
	}
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
		if o := want.Origins[i]; o.IsAFT() {
			states[aftIPEntry(o.AFT.Prefix)] = st{"installed", ""}
		} else if !o.IsPod() && !o.IsOverlay() {
			states[routeEntry(o.Prefix)] = st{"installed", ""}
		}
	}
	for _, a := range want.AFT {
		states[aftStateEntry(a.Key)] = st{a.Status, a.Reason}
	}
	for _, w := range want.Withheld {
		if w.Origin.IsAFT() {
			states[aftIPEntry(w.Origin.AFT.Prefix)] = st{"withheld", w.Reason}
		} else if !w.Origin.IsPod() {
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

// aftBase is gRIBI's next hops 1 (eth0) and 2 (veth1), groups 1 and 2
// through them, and two sessions: an operator's and a master's, both of
// underlay routes.
func aftBase() map[string]*gpb.TypedValue {
	a := "/kedge/aft/"
	m := map[string]*gpb.TypedValue{}
	for i, dev := range []string{"eth0", "veth1"} {
		id := strconv.Itoa(i + 1)
		nh := a + "next-hops/next-hop[index=" + id + "]/config/"
		m[nh+"index"], m[nh+"interface"] = uval(uint64(i+1)), str(dev)
		g := a + "next-hop-groups/next-hop-group[id=" + id + "]/"
		m[g+"config/id"], m[g+"next-hops/next-hop[index="+id+"]/config/index"] = uval(uint64(i+1)), uval(uint64(i+1))
	}
	for id, tier := range map[string]string{"op": "operator", "ma": "master"} {
		c := a + "sessions/session[id=" + id + "]/config/"
		m[c+"id"], m[c+"tier"], m[c+"class"] = str(id), str(tier), str("underlay")
	}
	return m
}

func aftIPEntry(prefix string) string {
	return "/kedge/aft/ipv4-entries/ipv4-entry[prefix=" + prefix + "]"
}

func aftIPConfig(prefix string, nhg uint64, session string) map[string]*gpb.TypedValue {
	c := aftIPEntry(prefix) + "/config/"
	return map[string]*gpb.TypedValue{c + "prefix": str(prefix), c + "next-hop-group": uval(nhg), c + "session": str(session)}
}

// aftStateEntry is the entry of a gRIBI state the intent reports.
func aftStateEntry(k intent.AFTKey) string {
	switch k.Kind {
	case intent.AFTNextHop:
		return "/kedge/aft/next-hops/next-hop[index=" + strconv.FormatUint(k.ID, 10) + "]"
	case intent.AFTNextHopGroup:
		return "/kedge/aft/next-hop-groups/next-hop-group[id=" + strconv.FormatUint(k.ID, 10) + "]"
	}
	return aftIPEntry(k.Prefix)
}

func podEntry(id string) string { return "/kedge/pods/pod[container-id=" + id + "][ifname=eth0]" }
