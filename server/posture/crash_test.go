package posture

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCrashMidTransitionResumes kills the engine inside a step of a 5→1
// transition (its context ends and its store closes, so nothing after that
// reaches disk), then starts a new engine with fresh backends on the
// reopened store. A crash after the data-plane gates resumes the recorded
// plan (same sequence number); a crash among the gates, before the record,
// leaves the old record, and the restart derives and runs the same plan
// afresh. Either way the steps end in the accord of level 1.
func TestCrashMidTransitionResumes(t *testing.T) {
	all := []string{"shm", "bpf-map", "forensic-snapshot", "handshake", "mesh", "routes", "notary"}
	for _, tc := range []struct {
		crashIn string
		resume  bool
	}{
		{"mesh", true},
		{"routes", true},
		{"bpf-map", false},
	} {
		t.Run(tc.crashIn, func(t *testing.T) {
			dir := t.TempDir()
			st := openStoreAt(t, dir)
			rs := allStages()
			rep := &reports{}
			e, err := New(st, Options{Steps: asSteps(rs), OnReport: rep.add})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			waitFor(t, "start-up at 5", func() bool { return len(rep.all()) == 1 })
			var once sync.Once
			crashAt := slices.Index(all, tc.crashIn)
			victim := rs[crashAt]
			victim.mu.Lock()
			victim.hook = func(_ context.Context, tr Transition) {
				if tr.To == 1 {
					once.Do(func() { cancel(); st.Close() })
				}
			}
			victim.mu.Unlock()
			setLevel(t, st, 1)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			var reached []string
			for _, r := range rs {
				if r.last().Level == 1 {
					reached = append(reached, r.name)
				}
			}
			if d := cmp.Diff(all[:crashAt+1], reached); d != "" {
				t.Fatalf("steps reached before the crash (-want +got):\n%s", d)
			}
			interrupted := rs[0].transitions()[1]

			// Restart: the store reopens, the backends start from scratch.
			st2 := openStoreAt(t, dir)
			t.Cleanup(func() { st2.Close() })
			rs2 := allStages()
			rep2 := &reports{}
			start(t, st2, Options{Steps: asSteps(rs2), OnReport: rep2.add})
			waitFor(t, "convergence on 1 after restart", func() bool { return converged(st2, rs2, 1) })
			first := rep2.all()[0]
			// Unrecorded or not, the plan keeps its number: the record
			// before it ended at the number below.
			wantSeq := interrupted.Seq
			if first.Resume != tc.resume || first.Seq != wantSeq || first.From != 5 || first.To != 1 || first.Result != ResultOK {
				t.Errorf("first report after restart: %+v; want resume=%v seq %d 5→1 ok", first, tc.resume, wantSeq)
			}
			var got []string
			for _, s := range first.Steps {
				got = append(got, s.Name)
			}
			if d := cmp.Diff(all, got); d != "" {
				t.Errorf("plan after restart (-want +got):\n%s", d)
			}
			if r := readRecord(t, st2); r.Inflight != nil {
				t.Errorf("in-flight record left: %+v", r.Inflight)
			}
			if n := len(rep2.all()); n != 1 {
				t.Errorf("%d transitions after restart, want one", n)
			}
		})
	}
}

// itemStep is a Snapshotter that withdraws items below their level and,
// like a kernel table, remembers nothing but what is installed.
type itemStep struct {
	mu    sync.Mutex
	items map[string]uint8 // item -> lowest level it is kept at
}

func (s *itemStep) Name() string { return "links" }
func (s *itemStep) Stage() Stage { return StageRoutes }

func (s *itemStep) Apply(_ context.Context, t Transition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = keep(s.items, t.To)
	return nil
}

func (s *itemStep) Snapshot(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.items)
}

func (s *itemStep) Restore(_ context.Context, t Transition, snap []byte) error {
	var all map[string]uint8
	if err := json.Unmarshal(snap, &all); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = keep(all, t.To)
	return nil
}

func (s *itemStep) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.items {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func keep(in map[string]uint8, level uint8) map[string]uint8 {
	out := map[string]uint8{}
	for k, min := range in {
		if level >= min {
			out[k] = min
		}
	}
	return out
}

// TestSnapshotSurvivesRestart: what an escalation withdraws comes back on
// de-escalation, step by step, even across a restart with a backend that
// remembers nothing; a deeper escalation keeps the first snapshot.
func TestSnapshotSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStoreAt(t, dir)
	items := &itemStep{items: map[string]uint8{"mgmt": 1, "ops": 3, "bulk": 5}}
	_, stop := start(t, st, Options{Steps: []Step{items}})
	waitFor(t, "start at 5", func() bool { return effectiveLevel(st) == 5 })
	setLevel(t, st, 2)
	waitFor(t, "withdrawn at 2", func() bool { return cmp.Equal(items.names(), []string{"mgmt"}) })
	stop()
	st.Close()

	st2 := openStoreAt(t, dir)
	t.Cleanup(func() { st2.Close() })
	fresh := &itemStep{items: map[string]uint8{"mgmt": 1}} // what survived in the "kernel"
	start(t, st2, Options{Steps: []Step{fresh}})
	waitFor(t, "restarted at 2", func() bool { return effectiveLevel(st2) == 2 })
	setLevel(t, st2, 1)
	waitFor(t, "level 1", func() bool { return effectiveLevel(st2) == 1 })
	setLevel(t, st2, 3)
	waitFor(t, "ops back at 3", func() bool { return cmp.Equal(fresh.names(), []string{"mgmt", "ops"}) })
	if r := readRecord(t, st2); r.Snapshot == nil || r.Snapshot.Level != 5 {
		t.Fatalf("snapshot %+v, want the one taken at 5 until returning there", r.Snapshot)
	}
	setLevel(t, st2, 5)
	waitFor(t, "everything back at 5", func() bool { return cmp.Equal(fresh.names(), []string{"bulk", "mgmt", "ops"}) })
	waitFor(t, "snapshot dropped at 5", func() bool { return readRecord(t, st2).Snapshot == nil })
}
