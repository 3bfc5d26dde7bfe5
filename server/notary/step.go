package notary

import (
	"context"

	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/posture"
)

type step struct{ n *Notary }

// Step is the notary's posture step (StageNotary): it applies the
// accord's fidelity (sampling share, flush mode, payload hashing, frame
// headers). Entering a stricter flush mode flushes what a batch holds at
// once, through the writer.
func (n *Notary) Step() posture.Step { return step{n} }

func (step) Name() string         { return "notary" }
func (step) Stage() posture.Stage { return posture.StageNotary }
func (s step) Apply(_ context.Context, t posture.Transition) error {
	n := s.n
	a := t.Accord
	f := notarymodel.FidelityOf(a, n.override.Load())
	n.appliedAccord.Store(&a)
	n.fid.Store(&f)
	n.level.Store(uint32(t.To))
	if n.o.Annotator != nil {
		n.o.Annotator.SetLevel(t.To)
	}
	n.markDirty()
	// The writer reads the fidelity at every round; wake it so a batch
	// waiting for its timer is flushed now when the mode is stricter. Not
	// waiting for it keeps the step from failing on a shutdown: a failed
	// step leaves the plan to be resumed at the next start.
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}
