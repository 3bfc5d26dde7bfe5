package posture

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/models/accord"
)

func TestPlanEveryLevelPair(t *testing.T) {
	var (
		escalateTo1 = []string{"shm", "bpf-map", "forensic-snapshot", "handshake", "mesh", "routes", "notary"}
		escalate    = []string{"shm", "bpf-map", "handshake", "mesh", "routes", "notary"}
		deescalate  = []string{"mesh", "routes", "handshake", "bpf-map", "shm", "notary"}
	)
	tests := []struct {
		from, to uint8
		want     []string
	}{
		{5, 4, escalate}, {5, 3, escalate}, {5, 2, escalate}, {5, 1, escalateTo1},
		{4, 3, escalate}, {4, 2, escalate}, {4, 1, escalateTo1},
		{3, 2, escalate}, {3, 1, escalateTo1},
		{2, 1, escalateTo1},
		{4, 5, deescalate},
		{3, 5, deescalate}, {3, 4, deescalate},
		{2, 5, deescalate}, {2, 4, deescalate}, {2, 3, deescalate},
		{1, 5, deescalate}, {1, 4, deescalate}, {1, 3, deescalate}, {1, 2, deescalate},
	}
	if len(tests) != 20 {
		t.Fatalf("%d pairs in the table, want all 20", len(tests))
	}
	// Register in scrambled order: the plan must not depend on it.
	rs := allStages()
	steps := asSteps([]*recStep{rs[5], rs[2], rs[0], rs[6], rs[3], rs[1], rs[4]})
	seen := map[[2]uint8]bool{}
	for _, tc := range tests {
		seen[[2]uint8{tc.from, tc.to}] = true
		a, _ := accord.Default(tc.to)
		p := BuildPlan(steps, tc.from, tc.to, a)
		if d := cmp.Diff(tc.want, p.Names()); d != "" {
			t.Errorf("%d→%d (-want +got):\n%s", tc.from, tc.to, d)
		}
		if p.From != tc.from || p.To != tc.to {
			t.Errorf("%d→%d: plan says %d→%d", tc.from, tc.to, p.From, p.To)
		}
	}
	if len(seen) != 20 {
		t.Errorf("table has duplicate pairs: %d distinct", len(seen))
	}
}

// TestPlanConverge: the same level runs every step in escalation order
// without a forensic snapshot.
func TestPlanConverge(t *testing.T) {
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		got := BuildPlan(asSteps(allStages()), l, l, a).Names()
		want := []string{"shm", "bpf-map", "handshake", "mesh", "routes", "notary"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("converge at %d (-want +got):\n%s", l, d)
		}
	}
}

// TestPlanForensicFollowsAccord: an override that turns the forensic
// snapshot on at level 2 puts it in the 5→2 plan.
func TestPlanForensicFollowsAccord(t *testing.T) {
	yes := true
	a, _ := accord.Effective(2, accord.Overrides{2: {ForensicSnapshot: &yes}})
	got := BuildPlan(asSteps(allStages()), 5, 2, a).Names()
	if got[2] != "forensic-snapshot" {
		t.Errorf("5→2 with forensic override: %v", got)
	}
}

// TestPlanSharedStage: steps of one stage run in registration order.
func TestPlanSharedStage(t *testing.T) {
	a, _ := accord.Default(3)
	steps := []Step{&recStep{name: "routes", stage: StageRoutes}, &recStep{name: "underlay-links", stage: StageRoutes},
		&recStep{name: "shm", stage: StageVPP}}
	if d := cmp.Diff([]string{"shm", "routes", "underlay-links"}, BuildPlan(steps, 5, 3, a).Names()); d != "" {
		t.Error(d)
	}
}

func TestEffectiveRule(t *testing.T) {
	tests := []struct {
		config, external uint8
		want             uint8
		source           string
	}{
		{5, 0, 5, SourceConfig},
		{3, 0, 3, SourceConfig},
		{5, 2, 2, SourceBPFMap},
		{2, 4, 2, SourceConfig},
		{3, 3, 3, SourceConfig}, // a tie goes to config
		{1, 5, 1, SourceConfig},
		{4, 9, 4, SourceConfig}, // invalid map values request nothing
	}
	for _, tc := range tests {
		got, src := Effective(tc.config, tc.external)
		if got != tc.want || src != tc.source {
			t.Errorf("Effective(%d, %d) = %d, %s; want %d, %s", tc.config, tc.external, got, src, tc.want, tc.source)
		}
	}
}
