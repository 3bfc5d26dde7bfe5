package posture

import (
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/accord"
)

// HistoryLen is how many past transitions /kedge/posture/history keeps.
const HistoryLen = 64

// Sources of the effective level (leaf /kedge/posture/state/source).
const (
	SourceConfig  = "config"
	SourceBPFMap  = "bpf-map"
	SourceCluster = "cluster"
)

// Transition results (typedef transition-result) and step results.
const (
	ResultOK         = "ok"
	ResultPartial    = "partial"
	ResultFailed     = "failed"
	ResultInProgress = "in-progress"
	ResultSkipped    = "skipped"
)

// StepResult is the timing and outcome of one step.
type StepResult struct {
	Index    int
	Name     string
	Started  time.Time
	Duration time.Duration
	Result   string // ok, failed or skipped
	Err      string
}

// Report is the outcome of one transition.
type Report struct {
	Seq      uint64
	From, To uint8
	// Source is what decided the target level (SourceConfig or
	// SourceBPFMap); empty for a plan resumed before any evaluation.
	Source   string
	Started  time.Time
	Duration time.Duration
	Result   string
	Resume   bool // a re-run of an interrupted or failed plan
	Steps    []StepResult
}

func ns(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// accordOps writes the effective accords of every level to
// /kedge/accords/accord[level]/state (CommitOperational: the entries may
// exist only in state).
func accordOps(all []accord.Accord) []store.Op {
	var out []store.Op
	for _, a := range all {
		st := kedgepath.Root().Kedge().Accords().Accord(a.Level).State()
		out = append(out,
			store.Update(st.Level(), a.Level),
			store.Update(st.OverlayMode(), kedgepath.AccordOverlayMode(a.OverlayMode)),
			store.Update(st.KeepaliveSeconds(), a.KeepaliveSeconds),
			store.Update(st.HealthCheckSeconds(), a.HealthCheckSeconds),
			store.Update(st.Handshake(), kedgepath.AccordHandshake(a.Handshake)),
			leafList(st.AllowedSessionTypes(), a.AllowedSessionTypes),
			leafList(st.UnderlayMutationTiers(), enums[kedgepath.Tier](a.UnderlayMutationTiers)),
			store.Update(st.CompilerFrozen(), a.CompilerFrozen),
			store.Update(st.UnderlayDriftIntervalMs(), a.UnderlayDriftMillis),
			store.Update(st.RoutePolicy(), kedgepath.AccordRoutePolicy(a.RoutePolicy)),
			store.Update(st.NotarySamplingPercent(), a.NotarySamplingPercent),
			store.Update(st.NotaryFlush(), kedgepath.NotaryFlushMode(a.NotaryFlush)),
			store.Update(st.NotaryPayloadHashing(), a.NotaryPayloadHashing),
			store.Update(st.ForensicSnapshot(), a.ForensicSnapshot),
			store.Update(st.VppFlowPolicy(), kedgepath.AccordVppFlowPolicy(a.VPPFlowPolicy)),
		)
	}
	return out
}

// leafList writes a leaf-list; an empty list deletes it (an empty
// leaf-list is indistinguishable from an absent one in the tree).
func leafList[P store.Leaf[[]T], T any](p P, vs []T) store.Op {
	if len(vs) == 0 {
		return store.Delete(p)
	}
	return store.Update(p, vs)
}

// enums converts strings to an enumeration type.
func enums[E ~string](vs []string) []E {
	out := make([]E, len(vs))
	for i, v := range vs {
		out[i] = E(v)
	}
	return out
}

// levelOps writes the level leaves of /kedge/posture/state.
func levelOps(cfg, eff uint8, source string, seq uint64) []store.Op {
	st := kedgepath.Root().Kedge().Posture().State()
	return []store.Op{
		store.Update(st.Level(), cfg),
		store.Update(st.EffectiveLevel(), eff),
		store.Update(st.Source(), kedgepath.PostureSource(source)),
		store.Update(st.Sequence(), seq),
	}
}

// reportOps writes a transition's report to last-transition, and, once it
// finished, to the history, dropping the entry that falls out of it.
func reportOps(r *Report, prevSteps int) []store.Op {
	lt := kedgepath.Root().Kedge().Posture().State().LastTransition()
	ops := []store.Op{
		store.Update(lt.FromLevel(), r.From),
		store.Update(lt.ToLevel(), r.To),
		store.Update(lt.Started(), ns(r.Started)),
		store.Update(lt.DurationNs(), uint64(r.Duration)),
		store.Update(lt.Result(), kedgepath.TransitionResult(r.Result)),
	}
	for i := len(r.Steps); i < prevSteps; i++ {
		ops = append(ops, store.Delete(lt.Steps().Step(uint8(i))))
	}
	for _, s := range r.Steps {
		st := lt.Steps().Step(uint8(s.Index)).State()
		ops = append(ops,
			store.Update(st.Index(), uint8(s.Index)),
			store.Update(st.Name(), s.Name),
			store.Update(st.Started(), ns(s.Started)),
			store.Update(st.DurationNs(), uint64(s.Duration)),
			store.Update(st.Result(), kedgepath.StepResult(s.Result)),
			store.Update(st.Error(), s.Err),
		)
	}
	if r.Result == ResultInProgress {
		return ops
	}
	history := kedgepath.Root().Kedge().Posture().History()
	h := history.Transition(r.Seq).State()
	ops = append(ops,
		store.Update(h.Sequence(), r.Seq),
		store.Update(h.FromLevel(), r.From),
		store.Update(h.ToLevel(), r.To),
		store.Update(h.Started(), ns(r.Started)),
		store.Update(h.DurationNs(), uint64(r.Duration)),
		store.Update(h.Result(), kedgepath.TransitionResult(r.Result)),
	)
	if r.Seq > HistoryLen {
		ops = append(ops, store.Delete(history.Transition(r.Seq-HistoryLen)))
	}
	return ops
}
