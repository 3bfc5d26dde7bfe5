package posture

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/yang"
)

func openStoreAt(t testing.TB, dir string) *store.Store {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func openStore(t testing.TB) *store.Store {
	st := openStoreAt(t, t.TempDir())
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

func setLevel(t testing.TB, st *store.Store, level uint8) uint64 {
	t.Helper()
	c, err := st.Commit(context.Background(), []store.Op{{Kind: store.OpUpdate,
		Path: mustPath(t, "/kedge/posture/config/level"),
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(level)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Seq
}

// recStep is a recording step: it keeps every transition it was asked to
// apply and can fail or run a hook.
type recStep struct {
	name  string
	stage Stage

	mu    sync.Mutex
	calls []Transition
	fail  int                                     // fail this many Apply calls
	hook  func(ctx context.Context, t Transition) // runs inside Apply
}

func (s *recStep) Name() string { return s.name }
func (s *recStep) Stage() Stage { return s.stage }
func (s *recStep) Apply(ctx context.Context, t Transition) error {
	s.mu.Lock()
	hook := s.hook
	s.calls = append(s.calls, t)
	fail := s.fail > 0
	if fail {
		s.fail--
	}
	s.mu.Unlock()
	if hook != nil {
		hook(ctx, t)
	}
	if fail {
		return errors.New("injected step failure")
	}
	return nil
}

// last is the accord the step last applied (level 0 if none).
func (s *recStep) last() accord.Accord {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		return accord.Accord{}
	}
	return s.calls[len(s.calls)-1].Accord
}

func (s *recStep) transitions() []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transition(nil), s.calls...)
}

// allStages returns one recording step per stage, named like the real ones.
func allStages() []*recStep {
	return []*recStep{
		{name: "shm", stage: StageVPP},
		{name: "bpf-map", stage: StageBPF},
		{name: "forensic-snapshot", stage: StageForensic},
		{name: "handshake", stage: StageHandshake},
		{name: "mesh", stage: StageMesh},
		{name: "routes", stage: StageRoutes},
		{name: "notary", stage: StageNotary},
	}
}

func asSteps(rs []*recStep) []Step {
	out := make([]Step, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// fakeSource is a LevelSource another program writes.
type fakeSource struct {
	mu    sync.Mutex
	level uint8
}

func (f *fakeSource) Level() (uint8, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level, nil
}

func (f *fakeSource) set(l uint8) {
	f.mu.Lock()
	f.level = l
	f.mu.Unlock()
}

// reports collects engine reports.
type reports struct {
	mu   sync.Mutex
	list []Report
}

func (r *reports) add(rep Report) {
	r.mu.Lock()
	r.list = append(r.list, rep)
	r.mu.Unlock()
}

func (r *reports) all() []Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Report(nil), r.list...)
}

// start runs an engine until the test ends (or stop is called) and returns
// stop, which waits for Run to return.
func start(t *testing.T, st Store, o Options) (*Engine, func()) {
	t.Helper()
	if o.PollInterval == 0 {
		o.PollInterval = time.Millisecond
	}
	e, err := New(st, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return e, stop
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// postureState reads a leaf of /kedge/posture/state.
func postureState(st *store.Store, leaf string) tree.Value {
	var v tree.Value
	_ = st.Read(func(t *tree.Tree) error {
		if k := t.Root().Sub("kedge"); k != nil {
			if p := k.Sub("posture"); p != nil {
				if s := p.Sub("state"); s != nil {
					v = s.Get(leaf)
				}
			}
		}
		return nil
	})
	return v
}

func effectiveLevel(st *store.Store) uint8 {
	return uint8(postureState(st, "effective-level").UintVal())
}

func readRecord(t testing.TB, st *store.Store) record {
	t.Helper()
	r, err := getJSON[record](st, metaRecord)
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		return record{}
	}
	return *r
}
