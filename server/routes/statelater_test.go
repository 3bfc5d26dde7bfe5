package routes

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/intent"
)

// gatedCommitter is a stateCommitter whose state commits, once gated,
// each wait for a release; it records the commits' operation counts.
type gatedCommitter struct {
	mu      sync.Mutex
	gated   bool
	release chan struct{}
	entered int
	done    []int
	ops     [][]store.Op // every commit's, in the order they started
}

func (g *gatedCommitter) Read(fn func(t *tree.Tree) error) error { return nil }

func (g *gatedCommitter) CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error) {
	g.mu.Lock()
	gated := g.gated
	g.entered++
	g.ops = append(g.ops, ops)
	g.mu.Unlock()
	if gated {
		<-g.release
	}
	g.mu.Lock()
	g.done = append(g.done, len(ops))
	g.mu.Unlock()
	return &store.Commit{}, nil
}

func (g *gatedCommitter) counts() (entered int, done []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entered, append([]int(nil), g.done...)
}

// TestDeltaStateCommittedBesideNextPatch: the applier returns from a
// change patched in before its state commit is done, and patches the
// next change in while that commit still runs; the next change's state
// commit starts only after it, so the state commits keep their order.
// (A bulk gRIBI load's kernel routes then do not wait for the state.)
func TestDeltaStateCommittedBesideNextPatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fake := routetest.New("eth0")
		st := &gatedCommitter{release: make(chan struct{})}
		a := &applier{b: fake, st: st, log: testLogger(t)}
		rt := func(p string) (route.Route, intent.Origin) {
			return route.Route{Dst: netip.MustParsePrefix(p), Device: "eth0"}, intent.Origin{Prefix: p}
		}
		r0, o0 := rt("10.0.0.0/24")
		whole := intent.RouteSet{Config: route.Config{Routes: []route.Route{r0}}, Origins: []intent.Origin{o0}, Seq: 1}
		if err := a.Set(ctx, whole); err != nil {
			t.Fatalf("whole set: %v", err)
		}
		change := func(p string, seq uint64) intent.RouteSet {
			r, o := rt(p)
			return intent.RouteSet{Seq: seq, Delta: &intent.RouteDelta{Patch: route.Patch{Put: []route.Route{r}},
				PutOrigins: []intent.Origin{o}}}
		}
		st.mu.Lock()
		st.gated = true
		st.mu.Unlock()

		set1 := make(chan error, 1)
		go func() { set1 <- a.Set(ctx, change("10.0.1.0/24", 2)) }()
		synctest.Wait()
		select {
		case err := <-set1:
			if err != nil {
				t.Fatalf("first change: %v", err)
			}
		default:
			st.release <- struct{}{}
			<-set1
			t.Fatal("the first change's Set waited for its state commit")
		}
		if entered, done := st.counts(); entered != 2 || len(done) != 1 {
			t.Fatalf("after the first change: %d state commits started, %d done; want 2 and 1", entered, len(done))
		}

		set2 := make(chan error, 1)
		go func() { set2 <- a.Set(ctx, change("10.0.2.0/24", 3)) }()
		synctest.Wait()
		if n := len(fake.Patches()); n != 2 {
			t.Errorf("%d patches while the first change's state commit runs, want 2", n)
		}
		if entered, _ := st.counts(); entered != 2 {
			t.Errorf("%d state commits started before the first change's was done, want 2", entered)
		}
		st.release <- struct{}{} // the first change's state
		synctest.Wait()
		if entered, done := st.counts(); entered != 3 || len(done) != 2 {
			t.Errorf("after the first change's state: %d state commits started, %d done; want 3 and 2", entered, len(done))
		}
		st.release <- struct{}{} // the second's
		if err := <-set2; err != nil {
			t.Fatalf("second change: %v", err)
		}
		a.wait()
		if _, done := st.counts(); len(done) != 3 {
			t.Errorf("%d state commits done, want 3", len(done))
		}
		if got := a.stats.Patches; got != 2 {
			t.Errorf("%d changes patched in, want 2", got)
		}
	})
}

// TestReasonDroppedBeforeItsStateLands: a route failed in a change
// patched in (its reason in a state commit still running) and installed
// by the next set, whose intent was read before that commit landed (the
// entry not stated yet), has its reason deleted by the next set's state:
// otherwise the tree would keep "installed" with the old reason.
func TestReasonDroppedBeforeItsStateLands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fake := routetest.New("eth0")
		st := &gatedCommitter{release: make(chan struct{})}
		a := &applier{b: fake, st: st, log: testLogger(t)}
		dst := netip.MustParsePrefix("10.0.1.0/24")
		r := route.Route{Dst: dst, Device: "eth0"}
		o := intent.Origin{Prefix: dst.String()}
		whole := intent.RouteSet{Config: route.Config{Routes: []route.Route{r}}, Origins: []intent.Origin{o}, Seq: 1}
		if err := a.Set(ctx, whole); err != nil {
			t.Fatalf("whole set: %v", err)
		}
		st.mu.Lock()
		st.gated = true
		st.mu.Unlock()
		fake.FailRoute(dst, errors.New("no route to the gateway"))
		o.Stated = true
		change := intent.RouteSet{Seq: 2, Delta: &intent.RouteDelta{Patch: route.Patch{Put: []route.Route{r}},
			PutOrigins: []intent.Origin{o}}}
		if err := a.Set(ctx, change); err == nil || !itemErrorsOnly(err) {
			t.Fatalf("failing change: %v, want the route's error", err)
		}
		fake.FailRoute(dst, nil)
		o.Stated = false // read before the failure's state landed
		again := intent.RouteSet{Config: route.Config{Routes: []route.Route{r}}, Origins: []intent.Origin{o}, Seq: 3}
		done := make(chan error, 1)
		go func() { done <- a.Set(ctx, again) }()
		synctest.Wait()
		st.release <- struct{}{} // the failure's state
		synctest.Wait()
		st.release <- struct{}{} // the next set's
		if err := <-done; err != nil {
			t.Fatalf("set again: %v", err)
		}
		a.wait()
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.ops) != 3 {
			t.Fatalf("%d state commits, want 3", len(st.ops))
		}
		var reasons []string
		for _, w := range leafWritesOf(st.ops[1]) {
			if w.name == "reason" && !w.del {
				reasons = append(reasons, w.val.GetStringVal())
			}
		}
		if len(reasons) != 1 {
			t.Fatalf("the failure's state wrote reasons %q, want one", reasons)
		}
		dropped := false
		for _, w := range leafWritesOf(st.ops[2]) {
			if w.name == "reason" && w.del {
				dropped = true
			}
		}
		if !dropped {
			t.Errorf("the set installing the route again left its reason %q in place: %d operations, none deleting it", reasons[0], len(st.ops[2]))
		}
	})
}

// leafWrite is one leaf an operation of a state commit writes or deletes.
type leafWrite struct {
	name string
	del  bool
	val  *gpb.TypedValue
}

// leafWritesOf lists the leaves ops write, whether each is its own
// operation or one of an entry operation's (OpEntry).
func leafWritesOf(ops []store.Op) []leafWrite {
	var out []leafWrite
	for _, op := range ops {
		if op.Kind == store.OpEntry {
			for _, w := range op.Leaves {
				out = append(out, leafWrite{w.Path[len(w.Path)-1].GetName(), w.Delete, w.Val})
			}
			continue
		}
		out = append(out, leafWrite{op.Path[len(op.Path)-1].GetName(), op.Kind == store.OpDelete, op.Val})
	}
	return out
}
