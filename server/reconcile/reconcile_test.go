package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

func openStore(t *testing.T, o store.Options) *store.Store {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), schema, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustPath(t testing.TB, s string) []*gpb.PathElem {
	t.Helper()
	p, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// addRoute commits one route to the tree's config.
func addRoute(t testing.TB, st *store.Store, i int) {
	t.Helper()
	prefix := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
	base := "/kedge/routes/route[prefix=" + prefix + "][table=254]/config/"
	_, err := st.Commit(context.Background(), []store.Op{
		{Kind: store.OpUpdate, Path: mustPath(t, base+"prefix"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: prefix}}},
		{Kind: store.OpUpdate, Path: mustPath(t, base+"table"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 254}}},
		{Kind: store.OpUpdate, Path: mustPath(t, base+"device"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "eth0"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// routeIntent is the test's intent: the sorted route prefixes.
func routeIntent(t *tree.Tree) ([]string, error) {
	var out []string
	if k := t.Root().Sub("kedge"); k != nil {
		if r := k.Sub("routes"); r != nil {
			r.Entries("route", func(e *tree.Inst) bool {
				out = append(out, e.Keys()[0].String())
				return true
			})
		}
	}
	slices.Sort(out)
	return out, nil
}

// fakeBackend records every Set; it can hold Set until released and fail
// a number of calls.
type fakeBackend struct {
	mu      sync.Mutex
	calls   [][]string
	times   []time.Time
	fail    int
	gate    chan struct{} // when non-nil, Set waits on it once
	entered chan struct{}
}

func (f *fakeBackend) Set(ctx context.Context, cfg []string) error {
	f.mu.Lock()
	gate := f.gate
	f.gate = nil
	f.mu.Unlock()
	if gate != nil {
		close(f.entered)
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(cfg))
	f.times = append(f.times, time.Now())
	if f.fail > 0 {
		f.fail--
		return errors.New("injected failure")
	}
	return nil
}

func (f *fakeBackend) snapshot() ([][]string, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.times)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func run[C any](t *testing.T, r *Reconciler[C]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestCoalesce: 100 commits that land while Set is busy are applied by one
// more Set, not 100.
func TestCoalesce(t *testing.T) {
	st := openStore(t, store.Options{})
	gate := make(chan struct{})
	b := &fakeBackend{gate: gate, entered: make(chan struct{})}
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"}})
	run(t, r)
	<-b.entered // the initial reconcile is inside Set
	for i := range 100 {
		addRoute(t, st, i)
	}
	close(gate)
	waitFor(t, "all 100 routes applied", func() bool {
		calls, _ := b.snapshot()
		return len(calls) > 0 && len(calls[len(calls)-1]) == 100
	})
	calls, _ := b.snapshot()
	if len(calls) != 2 {
		t.Errorf("Set called %d times, want 2 (initial, then one for the burst)", len(calls))
	}
	if got := r.Stats().Commits; got != 100 {
		t.Errorf("read %d relevant commits, want 100", got)
	}
}

// TestIrrelevantCommitsIgnored: changes outside the prefixes and state
// commits do not reconcile.
func TestIrrelevantCommitsIgnored(t *testing.T) {
	st := openStore(t, store.Options{})
	b := &fakeBackend{}
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"}})
	run(t, r)
	waitFor(t, "initial reconcile", func() bool { c, _ := b.snapshot(); return len(c) == 1 })
	_, err := st.Commit(context.Background(), []store.Op{{Kind: store.OpUpdate,
		Path: mustPath(t, "/kedge/system/config/node-name"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "n1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	addRoute(t, st, 1) // a relevant commit after the irrelevant one
	waitFor(t, "route applied", func() bool { c, _ := b.snapshot(); return len(c[len(c)-1]) == 1 })
	if c, _ := b.snapshot(); len(c) != 2 {
		t.Errorf("Set called %d times, want 2: %v", len(c), c)
	}
}

// TestRetryBackoff: failures are retried with growing, capped delays; the
// retry recomputes the intent, so changes made while failing are applied;
// the error shows in state and clears on success.
func TestRetryBackoff(t *testing.T) {
	st := openStore(t, store.Options{})
	b := &fakeBackend{fail: 4}
	report := func(_ []string, err error) []store.Op {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		return []store.Op{{Kind: store.OpUpdate, Path: mustPath(t, "/kedge/mesh/state/error"),
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: msg}}}}
	}
	const minB, maxB = 20 * time.Millisecond, 40 * time.Millisecond
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"},
		Report: report, RetryMin: minB, RetryMax: maxB})
	run(t, r)
	waitFor(t, "first failure in state", func() bool { return stateError(st) != "" })
	addRoute(t, st, 7) // arrives while the backend is failing
	waitFor(t, "success", func() bool { return r.Stats().Reconciles >= 5 && r.Stats().LastErr == nil })
	calls, times := b.snapshot()
	if len(calls) != 5 {
		t.Fatalf("Set called %d times, want 5 (4 failures, 1 success)", len(calls))
	}
	if last := calls[len(calls)-1]; len(last) != 1 {
		t.Errorf("final Set got %v, want the route committed during the failures", last)
	}
	want := []time.Duration{minB, 2 * minB, maxB, maxB} // doubling, capped
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < want[i-1] {
			t.Errorf("retry %d after %v, want at least %v", i, gap, want[i-1])
		}
	}
	waitFor(t, "error cleared in state", func() bool { return stateError(st) == "" })
	if s := r.Stats(); s.Failures != 4 {
		t.Errorf("Failures = %d, want 4", s.Failures)
	}
}

func stateError(st *store.Store) string {
	var msg string
	_ = st.Read(func(t *tree.Tree) error {
		if k := t.Root().Sub("kedge"); k != nil {
			if m := k.Sub("mesh"); m != nil {
				if s := m.Sub("state"); s != nil {
					msg = s.Get("error").Str()
				}
			}
		}
		return nil
	})
	return msg
}

// TestResync: a watcher that falls behind the feed re-reads the tree and
// still converges on everything.
func TestResync(t *testing.T) {
	st := openStore(t, store.Options{FeedBudget: 10})
	gate := make(chan struct{})
	b := &fakeBackend{gate: gate, entered: make(chan struct{})}
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"}})
	run(t, r)
	<-b.entered
	for i := range 50 { // 100 leaf changes against a budget of 10
		addRoute(t, st, i)
	}
	close(gate)
	waitFor(t, "all 50 routes applied", func() bool {
		calls, _ := b.snapshot()
		return len(calls) > 0 && len(calls[len(calls)-1]) == 50
	})
	if s := r.Stats(); s.Resyncs < 1 {
		t.Errorf("Resyncs = %d, want at least 1", s.Resyncs)
	}
}

// TestKick reconciles without a tree change.
func TestKick(t *testing.T) {
	st := openStore(t, store.Options{})
	b := &fakeBackend{}
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test"})
	run(t, r)
	waitFor(t, "initial reconcile", func() bool { return r.Stats().Reconciles == 1 })
	r.Kick()
	waitFor(t, "kicked reconcile", func() bool { return r.Stats().Reconciles == 2 })
}

// TestKickCutsBackoff: after a failure the retry waits out its backoff,
// but a Kick (the backend saw its world change) reconciles at once.
func TestKickCutsBackoff(t *testing.T) {
	st := openStore(t, store.Options{})
	b := &fakeBackend{fail: 1}
	r := New[[]string](st, routeIntent, b, Options[[]string]{Name: "test", RetryMin: time.Hour, RetryMax: time.Hour})
	run(t, r)
	waitFor(t, "the failed first reconcile", func() bool { return r.Stats().Failures == 1 })
	start := time.Now()
	r.Kick()
	waitFor(t, "the kicked retry", func() bool { return r.Stats().Reconciles == 2 })
	if s := r.Stats(); s.LastErr != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("kicked retry: err %v after %v", s.LastErr, time.Since(start))
	}
}

// feedFollower records what a feed-following intent is told.
type feedFollower struct {
	mu       sync.Mutex
	observed []uint64
	lost     int
	intents  []uint64 // the seq each IntentAt read
}

// TestIntentFollowsFeed: an intent with IntentAt sees every commit the
// reconciler reads, in order and once, and the tree's sequence number
// with each read; a lost feed is reported.
func TestIntentFollowsFeed(t *testing.T) {
	st := openStore(t, store.Options{FeedBudget: 10})
	gate := make(chan struct{})
	b := &fakeBackend{gate: gate, entered: make(chan struct{})}
	f := &feedFollower{}
	r := New[[]string](st, nil, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"},
		IntentAt: func(t *tree.Tree, seq uint64) ([]string, error) {
			f.mu.Lock()
			f.intents = append(f.intents, seq)
			f.mu.Unlock()
			return routeIntent(t)
		},
		Observe: func(seq uint64, state bool, changes []tree.Change) {
			f.mu.Lock()
			f.observed = append(f.observed, seq)
			f.mu.Unlock()
		},
		Lost: func() {
			f.mu.Lock()
			f.lost++
			f.mu.Unlock()
		},
	})
	run(t, r)
	<-b.entered
	addRoute(t, st, 0)
	close(gate)
	waitFor(t, "route 0 applied", func() bool {
		calls, _ := b.snapshot()
		return len(calls) > 0 && len(calls[len(calls)-1]) == 1
	})
	for i := 1; i <= 3; i++ {
		addRoute(t, st, i)
		waitFor(t, fmt.Sprintf("route %d applied", i), func() bool {
			calls, _ := b.snapshot()
			return len(calls[len(calls)-1]) == i+1
		})
	}
	f.mu.Lock()
	observed, intents := slices.Clone(f.observed), slices.Clone(f.intents)
	f.mu.Unlock()
	if want := []uint64{1, 2, 3, 4}; !slices.Equal(observed, want) {
		t.Errorf("observed %v, want %v", observed, want)
	}
	if last := intents[len(intents)-1]; last != 4 {
		t.Errorf("last intent read the tree at seq %d, want 4", last)
	}
	// Overflow the feed while Set is held: the intent hears it was lost.
	b.mu.Lock()
	b.gate, b.entered = make(chan struct{}), make(chan struct{})
	gate = b.gate
	b.mu.Unlock()
	addRoute(t, st, 100)
	<-b.entered
	for i := 4; i < 40; i++ {
		addRoute(t, st, i)
	}
	close(gate)
	waitFor(t, "all routes applied", func() bool {
		calls, _ := b.snapshot()
		return len(calls[len(calls)-1]) == 41
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost == 0 {
		t.Error("a feed overflow was not reported as lost")
	}
}

// TestIntentCatchesUpWithFeed: a reconcile whose tree is ahead of the
// feed it drained (a kick, or a commit landing between the drain and the
// read) first tells Observe of the commits in between, so an intent that
// follows the feed never sees a tree with commits it was not told of
// (the routes intent then computed everything again: a whole Set at
// 100,000 routes for one pod's route).
func TestIntentCatchesUpWithFeed(t *testing.T) {
	st := openStore(t, store.Options{})
	b := &fakeBackend{}
	var observed []uint64
	var behind []uint64 // trees read with commits not yet observed
	r := New[[]string](st, nil, b, Options[[]string]{Name: "test", Prefixes: []string{"/kedge/routes"},
		IntentAt: func(t *tree.Tree, seq uint64) ([]string, error) {
			if len(observed) == 0 || observed[len(observed)-1] != seq {
				behind = append(behind, seq)
			}
			return routeIntent(t)
		},
		Observe: func(seq uint64, state bool, changes []tree.Change) { observed = append(observed, seq) },
	})
	w, err := st.ReadWatch(func(*tree.Tree, uint64) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	addRoute(t, st, 0)
	addRoute(t, st, 1)
	// What Run does on a kick: reconcile without draining first.
	if w, err = r.reconcile(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if len(behind) > 0 {
		t.Errorf("the intent read trees %v ahead of the commits observed %v", behind, observed)
	}
	if want := []uint64{1, 2}; !slices.Equal(observed, want) {
		t.Errorf("observed %v, want %v", observed, want)
	}
	if got := r.Stats().Commits; got != 2 {
		t.Errorf("relevant commits counted %d, want 2", got)
	}
	if calls, _ := b.snapshot(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Errorf("Set calls %v, want one with both routes", calls)
	}
	// The watcher is past them: Run's next drain reads nothing twice.
	if _, ok, err := w.TryNext(); ok || err != nil {
		t.Errorf("watcher after the reconcile: a commit (%v) or error %v, want neither", ok, err)
	}
}
