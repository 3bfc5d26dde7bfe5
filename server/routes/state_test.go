package routes

import (
	"context"
	"fmt"
	"runtime/metrics"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// leafStateOps is how the state writer wrote a /kedge/aft entry's state
// before it wrote one entry operation: an update of the status leaf and
// an update or delete of the reason leaf, each a path from the root.
func leafStateOps(k stateKey, v stateVal, dropReason bool) []store.Op {
	a := kedgepath.Root().Kedge().Aft()
	status := kedgepath.AftStatus(v.status)
	reason := v.reason != "" || dropReason
	var ops []store.Op
	add := func(s store.Op, r func() store.Op) {
		ops = append(ops, s)
		if reason {
			ops = append(ops, r())
		}
	}
	switch k.aft {
	case intent.AFTIPv4:
		st := a.Ipv4Entries().Ipv4Entry(k.a).State()
		add(store.Update(st.Status(), status), func() store.Op { return reasonOp(st.Reason(), v.reason) })
	case intent.AFTIPv6:
		st := a.Ipv6Entries().Ipv6Entry(k.a).State()
		add(store.Update(st.Status(), status), func() store.Op { return reasonOp(st.Reason(), v.reason) })
	case intent.AFTNextHopGroup:
		st := a.NextHopGroups().NextHopGroup(k.id).State()
		add(store.Update(st.Status(), status), func() store.Op { return reasonOp(st.Reason(), v.reason) })
	default:
		st := a.NextHops().NextHop(k.id).State()
		add(store.Update(st.Status(), status), func() store.Op { return reasonOp(st.Reason(), v.reason) })
	}
	return ops
}

// reasonOp writes reason to p, or deletes p when there is none.
func reasonOp[P store.Leaf[string]](p P, reason string) store.Op {
	if reason == "" {
		return store.Delete(p)
	}
	return store.Update(p, reason)
}

// aftStore is a store holding one entry of each /kedge/aft list.
func aftStore(t *testing.T) *store.Store {
	t.Helper()
	st := yangtest.Store(t)
	a := kedgepath.Root().Kedge().Aft()
	v4 := a.Ipv4Entries().Ipv4Entry("198.51.100.0/24").Config()
	v6 := a.Ipv6Entries().Ipv6Entry("2001:db8::/64").Config()
	g := a.NextHopGroups().NextHopGroup(7).Config()
	h := a.NextHops().NextHop(3).Config()
	if _, err := st.Commit(context.Background(), []store.Op{
		store.Update(v4.Prefix(), "198.51.100.0/24"), store.Update(v4.NextHopGroup(), 7),
		store.Update(v6.Prefix(), "2001:db8::/64"), store.Update(v6.NextHopGroup(), 7),
		store.Update(g.Id(), 7), store.Update(h.Index(), 3), store.Update(h.IpAddress(), "192.0.2.1"),
	}); err != nil {
		t.Fatalf("commit the entries: %v", err)
	}
	return st
}

// changeList renders a commit's changes.
func changeList(c *store.Commit) []string {
	var out []string
	for _, ch := range c.Changes {
		out = append(out, fmt.Sprintf("%d %s %q %q", ch.Op, ch.Path(), ch.Val.String(), ch.Old.String()))
	}
	return out
}

// entryOpSteps are the states the entry-operation tests write in turn:
// reasons set, changed, kept, deleted and deleted again when gone.
var entryOpSteps = []struct {
	v    stateVal
	drop bool
}{
	{stateVal{statusPending, "not applied yet"}, false},
	{stateVal{status: statusInstalled}, true}, // the reason deleted
	{stateVal{status: statusInstalled}, false},
	{stateVal{statusFailed, "no route to 192.0.2.1"}, false},
	{stateVal{statusFailed, "another reason"}, false},
	{stateVal{statusWithheld, "level 1"}, false},
	{stateVal{status: statusInstalled}, true},
	{stateVal{status: statusInstalled}, true}, // deleting what is gone
	{stateVal{status: statusPending}, false},
}

// TestAFTStateEntryOps: the state writer's one entry operation per
// /kedge/aft entry commits exactly what the per-leaf writes it replaces
// did, in the tree and in the change feed, through a sequence that sets,
// changes, keeps and deletes the reason leaf of an entry of each list;
// and the reason leaf is gone after a drop.
func TestAFTStateEntryOps(t *testing.T) {
	leafSt, entrySt := aftStore(t), aftStore(t)
	keys := []stateKey{
		{aft: intent.AFTIPv4, a: "198.51.100.0/24"},
		{aft: intent.AFTIPv6, a: "2001:db8::/64"},
		{aft: intent.AFTNextHopGroup, id: 7},
		{aft: intent.AFTNextHop, id: 3},
	}
	for i, s := range entryOpSteps {
		// Every entry in one commit, as a batch of a bulk load writes
		// them, which also shares the status values between entries.
		var leafOps []store.Op
		w := &stateWriter{written: newStateRecord(0)}
		for _, k := range keys {
			leafOps = append(leafOps, leafStateOps(k, s.v, s.drop)...)
			w.aftOp(k, s.v, s.drop)
		}
		if len(w.ops) != len(keys) {
			t.Fatalf("step %d: %d operations for %d entries, want one each", i, len(w.ops), len(keys))
		}
		sameChanges(t, fmt.Sprintf("step %d (%+v)", i, s), leafSt, leafOps, entrySt, w.ops)
		for _, k := range keys {
			st := aftEntryState(t, entrySt, k)
			want := [2]string{s.v.status, s.v.reason}
			if !s.drop && s.v.reason == "" && i > 0 {
				want[1] = aftEntryState(t, leafSt, k)[1] // kept as it was
			}
			if st != want {
				t.Errorf("step %d: %+v holds %q, want %q", i, k, st, want)
			}
		}
	}
}

// aftEntryState reads an entry's status and reason.
func aftEntryState(t *testing.T, st *store.Store, k stateKey) [2]string {
	t.Helper()
	a := kedgepath.Root().Kedge().Aft()
	var ps [2]store.Path
	switch k.aft {
	case intent.AFTIPv4:
		s := a.Ipv4Entries().Ipv4Entry(k.a).State()
		ps = [2]store.Path{s.Status(), s.Reason()}
	case intent.AFTIPv6:
		s := a.Ipv6Entries().Ipv6Entry(k.a).State()
		ps = [2]store.Path{s.Status(), s.Reason()}
	case intent.AFTNextHopGroup:
		s := a.NextHopGroups().NextHopGroup(k.id).State()
		ps = [2]store.Path{s.Status(), s.Reason()}
	default:
		s := a.NextHops().NextHop(k.id).State()
		ps = [2]store.Path{s.Status(), s.Reason()}
	}
	var out [2]string
	st.Read(func(tr *tree.Tree) error {
		for i, p := range ps {
			if tgt, ok, _ := tr.Lookup(p.Elems()); ok && tgt.Node != nil {
				out[i] = tgt.In.Leaf(tgt.Node).Str()
			}
		}
		return nil
	})
	return out
}

// TestAFTStateEntryGone: the state of a /kedge/aft entry deleted since the
// intent was read (an entry operation, whose path is the entry's) does not
// stop the state of the others.
func TestAFTStateEntryGone(t *testing.T) {
	st := aftStore(t)
	a := &applier{st: st}
	w := &stateWriter{written: newStateRecord(0)}
	w.aftOp(stateKey{aft: intent.AFTIPv4, a: "198.51.100.0/24"}, stateVal{status: statusInstalled}, false)
	w.aftOp(stateKey{aft: intent.AFTIPv4, a: "198.51.101.0/24"}, stateVal{status: statusInstalled}, false) // no such entry
	w.aftOp(stateKey{aft: intent.AFTNextHop, id: 3}, stateVal{statusFailed, "no route"}, false)
	if _, err := st.CommitState(context.Background(), w.ops); err == nil {
		t.Fatal("state of a missing entry committed: the retry path is not exercised")
	}
	if err := a.commitState(context.Background(), w.ops); err != nil {
		t.Fatalf("commit state: %v", err)
	}
	if got := aftEntryState(t, st, stateKey{aft: intent.AFTIPv4, a: "198.51.100.0/24"}); got != [2]string{statusInstalled, ""} {
		t.Errorf("IPv4 entry holds %q, want installed", got)
	}
	if got := aftEntryState(t, st, stateKey{aft: intent.AFTNextHop, id: 3}); got != [2]string{statusFailed, "no route"} {
		t.Errorf("next hop holds %q, want failed", got)
	}
}

// TestRouteStateEntryOps is TestAFTStateEntryOps for /kedge/routes: the
// writer's one entry operation a route (routeOp) changes the tree as the
// status and reason written leaf by leaf through the routes' typed paths
// do, for routes in two tables, the same status values shared between
// entries, across reasons set, kept and deleted.
func TestRouteStateEntryOps(t *testing.T) {
	stores := [2]*store.Store{yangtest.Store(t), yangtest.Store(t)}
	keys := []stateKey{{a: "198.51.100.0/24", table: 254}, {a: "2001:db8::/64", table: 254}, {a: "198.51.100.0/24", table: 100}}
	for _, st := range stores {
		var ops []store.Op
		for _, k := range keys {
			c := kedgepath.Root().Kedge().Routes().Route(k.a, k.table).Config()
			ops = append(ops, store.Update(c.Prefix(), k.a), store.Update(c.Table(), k.table), store.Update(c.Device(), "eth0"))
		}
		if _, err := st.Commit(context.Background(), ops); err != nil {
			t.Fatalf("commit the routes: %v", err)
		}
	}
	leafSt, entrySt := stores[0], stores[1]
	for i, s := range entryOpSteps {
		var leafOps []store.Op
		w := &stateWriter{written: newStateRecord(0)}
		for _, k := range keys {
			st := kedgepath.Root().Kedge().Routes().Route(k.a, k.table).State()
			leafOps = append(leafOps, store.Update(st.Status(), kedgepath.RouteStatus(s.v.status)))
			if s.v.reason != "" || s.drop {
				leafOps = append(leafOps, reasonOp(st.Reason(), s.v.reason))
			}
			w.routeOp(k, s.v, s.drop)
		}
		if len(w.ops) != len(keys) {
			t.Fatalf("step %d: %d operations for %d routes, want one each", i, len(w.ops), len(keys))
		}
		sameChanges(t, fmt.Sprintf("step %d (%+v)", i, s), leafSt, leafOps, entrySt, w.ops)
		for _, k := range keys {
			st := kedgepath.Root().Kedge().Routes().Route(k.a, k.table).State()
			var got [2]string
			entrySt.Read(func(tr *tree.Tree) error {
				for j, p := range [2]store.Path{st.Status(), st.Reason()} {
					if tgt, ok, _ := tr.Lookup(p.Elems()); ok && tgt.Node != nil {
						got[j] = tgt.In.Leaf(tgt.Node).Str()
					}
				}
				return nil
			})
			if got[0] != s.v.status || s.v.reason != "" && got[1] != s.v.reason || s.drop && got[1] != "" {
				t.Errorf("step %d: %+v holds %q, want status %q reason %q", i, k, got, s.v.status, s.v.reason)
			}
		}
	}
	// Statuses that differ from one route to the next in one commit: the
	// shared status value follows.
	mixed := []stateVal{{status: statusInstalled}, {statusFailed, "no such device"}, {status: statusWithheld}}
	w := &stateWriter{written: newStateRecord(0)}
	for i, k := range keys {
		w.routeOp(k, mixed[i], true)
	}
	if _, err := entrySt.CommitState(context.Background(), w.ops); err != nil {
		t.Fatalf("mixed state: %v", err)
	}
	for i, k := range keys {
		st := kedgepath.Root().Kedge().Routes().Route(k.a, k.table).State()
		var got string
		entrySt.Read(func(tr *tree.Tree) error {
			if tgt, ok, _ := tr.Lookup(st.Status().Elems()); ok && tgt.Node != nil {
				got = tgt.In.Leaf(tgt.Node).Str()
			}
			return nil
		})
		if got != mixed[i].status {
			t.Errorf("mixed: %+v holds status %q, want %q", k, got, mixed[i].status)
		}
	}
	// A route that is not in the tree is an error, as its leaf writes
	// were (TestRouteStateEntryGone relies on it).
	w = &stateWriter{written: newStateRecord(0)}
	w.routeOp(stateKey{a: "203.0.113.0/24", table: 254}, stateVal{status: statusInstalled}, false)
	if _, err := entrySt.CommitState(context.Background(), w.ops); err == nil {
		t.Error("state of a missing route committed")
	}
}

// TestOneEntryStateIsSmall: the state of one route, or one AFT entry, as
// a one-route Set or one gRIBI operation writes it, takes a few hundred
// bytes, not the bulk load's chunks of keys and leaf writes (which made
// a one-route Set allocate 125 KB instead of 38: a collection three times
// as often under churn). Allocated bytes, not time.
func TestOneEntryStateIsSmall(t *testing.T) {
	for _, k := range []stateKey{{a: "10.1.0.0/24", table: 254}, {aft: intent.AFTIPv4, a: "10.1.0.0/24"}} {
		const rounds = 1000
		sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(sample)
		before := sample[0].Value.Uint64()
		for range rounds {
			w := &stateWriter{written: newStateRecord(0)}
			w.put(k, stateVal{statusFailed, "no such device"}, false)
			if len(w.ops) != 1 {
				t.Fatalf("%+v: %d operations, want 1", k, len(w.ops))
			}
		}
		metrics.Read(sample)
		if per := (sample[0].Value.Uint64() - before) / rounds; per > 2048 {
			t.Errorf("%+v: one entry's state allocated %d bytes, want at most 2 KiB", k, per)
		}
	}
}

// sameChanges commits the per-leaf operations to one store and the entry
// operations to the other, and fails unless they changed the same leaves
// the same way.
func sameChanges(t *testing.T, step string, leafSt *store.Store, leafOps []store.Op, entrySt *store.Store, entryOps []store.Op) {
	t.Helper()
	lc, err := leafSt.CommitState(context.Background(), leafOps)
	if err != nil {
		t.Fatalf("%s: per-leaf state: %v", step, err)
	}
	ec, err := entrySt.CommitState(context.Background(), entryOps)
	if err != nil {
		t.Fatalf("%s: entry state: %v", step, err)
	}
	if d := cmp.Diff(changeList(lc), changeList(ec)); d != "" {
		t.Errorf("%s: entry operations changed the tree otherwise (-per leaf +entry):\n%s", step, d)
	}
}
