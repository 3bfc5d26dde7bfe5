package posture

import (
	"context"
	"fmt"

	"github.com/guildhouse-co/kedge/models/accord"
)

// Stage is where a step runs in a transition plan. Several steps may share
// a stage; they run in registration order.
type Stage uint8

// Stages. The numbering is DESIGN.md's escalation order; StageForensic runs
// between the data-plane gates and the session layer (see the package doc).
const (
	StageVPP Stage = iota + 1
	StageBPF
	StageForensic
	StageHandshake
	StageMesh
	StageRoutes
	StageNotary
)

func (s Stage) String() string {
	switch s {
	case StageVPP:
		return "vpp"
	case StageBPF:
		return "bpf"
	case StageForensic:
		return "forensic"
	case StageHandshake:
		return "handshake"
	case StageMesh:
		return "mesh"
	case StageRoutes:
		return "routes"
	case StageNotary:
		return "notary"
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// escalationOrder also serves convergence at one level.
var escalationOrder = []Stage{StageVPP, StageBPF, StageForensic, StageHandshake, StageMesh, StageRoutes, StageNotary}

// deescalationOrder brings reachability back before opening the gates and
// lowers notary fidelity last.
var deescalationOrder = []Stage{StageMesh, StageRoutes, StageHandshake, StageBPF, StageVPP, StageNotary}

// Transition is what a step is asked to do.
type Transition struct {
	Seq    uint64        // the transition's sequence number
	From   uint8         // effective level before (equal to To when converging)
	To     uint8         // effective level to reach
	Accord accord.Accord // the effective accord of To
	Resume bool          // re-running a plan a crash or failure interrupted
}

// Escalation reports whether the transition tightens.
func (t Transition) Escalation() bool { return t.To < t.From }

// Step is one part of a transition, owned by whoever registers it. Apply
// must be idempotent (the engine re-runs plans after failures and crashes)
// and must return when ctx is done. The engine calls steps from one
// goroutine, one at a time.
type Step interface {
	// Name is the step's name in /kedge/posture/state (shm, bpf-map, ...).
	Name() string
	// Stage places the step in the plan.
	Stage() Stage
	// Apply makes what the step owns match t.Accord.
	Apply(ctx context.Context, t Transition) error
}

// Snapshotter is implemented by steps that withdraw things on escalation
// which the tree does not describe by itself and which de-escalation must
// bring back exactly.
type Snapshotter interface {
	// Snapshot returns an opaque record of what the step has applied now.
	// The engine calls it before the first escalation from an unescalated
	// level (after the data-plane gates closed, before any withdrawal) and
	// keeps the record durably.
	Snapshot(ctx context.Context) ([]byte, error)
	// Restore replaces Apply on de-escalation while a snapshot exists: the
	// step applies t.Accord to the snapshot's contents.
	Restore(ctx context.Context, t Transition, snap []byte) error
}

// Background is implemented by steps whose Apply returns once the part
// that must precede the next step is done and finishes the rest
// concurrently with the following steps (the forensic snapshot pins the
// tree's version from before the teardown, then encodes and stores). The
// engine calls Wait before it reports the transition; the step's duration
// runs until Wait returns.
type Background interface {
	Wait() error
}

// Plan is the ordered steps of one transition.
type Plan struct {
	From, To uint8
	Steps    []Step
}

// Names returns the plan's step names in order.
func (p Plan) Names() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Name()
	}
	return out
}

// BuildPlan orders steps for a transition from one level to another under
// the target's accord. The forensic stage runs only when escalating into a
// level whose accord asks for a forensic snapshot.
func BuildPlan(steps []Step, from, to uint8, a accord.Accord) Plan {
	order := escalationOrder
	if to > from {
		order = deescalationOrder
	}
	p := Plan{From: from, To: to}
	for _, st := range order {
		if st == StageForensic && (to >= from || !a.ForensicSnapshot) {
			continue
		}
		for _, s := range steps {
			if s.Stage() == st {
				p.Steps = append(p.Steps, s)
			}
		}
	}
	return p
}
