package shellstream

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/server/posture"
)

type namedStep struct {
	name  string
	stage posture.Stage
}

func (s namedStep) Name() string                                  { return s.name }
func (s namedStep) Stage() posture.Stage                          { return s.stage }
func (namedStep) Apply(context.Context, posture.Transition) error { return nil }

// TestStepOrder: the handshake step runs after the VPP segment and the BPF
// map on escalation (the data plane tightens first) and before them on
// de-escalation, whatever order the daemon registers steps in.
func TestStepOrder(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	steps := []posture.Step{h.svc.Step(), namedStep{"mesh", posture.StageMesh}, namedStep{"bpf-map", posture.StageBPF}, namedStep{"shm", posture.StageVPP}}
	a3, _ := accord.Default(3)
	if got := posture.BuildPlan(steps, 5, 3, a3).Names(); !cmp.Equal(got, []string{"shm", "bpf-map", "handshake", "mesh"}) {
		t.Errorf("escalation plan %v", got)
	}
	a5, _ := accord.Default(5)
	if got := posture.BuildPlan(steps, 3, 5, a5).Names(); !cmp.Equal(got, []string{"mesh", "handshake", "bpf-map", "shm"}) {
		t.Errorf("de-escalation plan %v", got)
	}
	if _, err := h.svc.ApplyLevel(context.Background(), 0, a3); err == nil {
		t.Error("level 0 applied")
	}
}
