package posture

import (
	"context"
	"sync"
	"testing"
)

// A plan interrupted on its way to level 5 is not replayed after a restart
// when another program has meanwhile put level 1 in the BPF map: replaying
// it would apply level 5 (install what level 1 withholds) for a moment.
// The restart goes straight to level 1.
func TestInterruptedPlanToAnOldLevelIsSuperseded(t *testing.T) {
	dir := t.TempDir()
	st := openStoreAt(t, dir)
	rs := allStages()
	e, err := New(st, Options{Steps: asSteps(rs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	victim := rs[len(rs)-2] // routes: after the record of the plan
	victim.mu.Lock()
	victim.hook = func(context.Context, Transition) { once.Do(func() { cancel(); st.Close() }) }
	victim.mu.Unlock()
	if err := e.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r := readRecordAt(t, dir); r.Inflight == nil || r.Inflight.To != 5 {
		t.Fatalf("no plan to 5 in flight after the crash: %+v", r.Inflight)
	}

	st2 := openStoreAt(t, dir)
	t.Cleanup(func() { st2.Close() })
	rs2 := allStages()
	src := &fakeSource{level: 1}
	start(t, st2, Options{Steps: asSteps(rs2), LevelSource: src})
	waitFor(t, "convergence on 1 after restart", func() bool { return converged(st2, rs2, 1) })
	for _, r := range rs2 {
		for _, tr := range r.transitions() {
			if tr.To != 1 {
				t.Errorf("step %s applied level %d after the restart (the map holds 1)", r.name, tr.To)
			}
		}
	}
}

func readRecordAt(t *testing.T, dir string) record {
	t.Helper()
	st := openStoreAt(t, dir)
	defer st.Close()
	return readRecord(t, st)
}
