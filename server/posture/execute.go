package posture

import (
	"context"
	"fmt"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// restore loads the durable record.
func (e *Engine) restore() error {
	r, err := getJSON[record](e.st, metaRecord)
	if err != nil {
		return fmt.Errorf("restore posture engine: %w", err)
	}
	if r == nil {
		return nil
	}
	if accord.Valid(r.Applied.Level) {
		e.applied, e.hasApply = r.Applied, true
	}
	if p := r.Inflight; p != nil && accord.Valid(p.From) && accord.Valid(p.To) {
		e.pending = p
		e.applied.Seq = max(e.applied.Seq, p.Seq)
	}
	if s := r.Snapshot; s != nil && accord.Valid(s.Level) {
		e.snap = s
	}
	return nil
}

// save makes the engine's record durable.
func (e *Engine) save() {
	r := record{Applied: e.applied, Inflight: e.pending, Snapshot: e.snap}
	if err := putJSON(e.st, metaRecord, r); err != nil {
		e.log.Error("record posture engine state", "err", err)
	}
}

// readTree loads the inputs from the tree and returns a watcher positioned
// right after what it read.
func (e *Engine) readTree() (*store.Watcher, error) {
	w, err := e.st.ReadWatch(func(t *tree.Tree, _ uint64) error { e.load(t); return nil })
	if err != nil {
		return nil, fmt.Errorf("read posture config: %w", err)
	}
	return w, nil
}

// load reads the intended level and the accord overrides from a snapshot
// of the tree.
func (e *Engine) load(t *tree.Tree) {
	e.cfgLevel = accord.ConfigLevel(t) // the YANG default (5) when unset
	e.clusterLevel = 0                 // the cluster asks for nothing
	if v, ok := kedgetree.Of(t).Kedge().Posture().Cluster().Config().Level(); ok && accord.Valid(v) {
		e.clusterLevel = v
	}
	e.overrides = accord.OverridesFromTree(t)
	e.accords = accord.All(e.overrides)
}

func (e *Engine) accordOf(level uint8) accord.Accord { return e.accords[level-1] }

func (e *Engine) publishAccords(ctx context.Context) error {
	if _, err := e.st.CommitOperational(ctx, accordOps(e.accords)); err != nil {
		return fmt.Errorf("publish accords: %w", err)
	}
	return nil
}

// pollSource reads the level source and returns the standing external
// request (0: none) and whether the source shows a write the engine did
// not make (see the package doc): a value that changed since the last read
// and differs from the level the engine last wrote to the map.
func (e *Engine) pollSource() (uint8, bool) {
	if e.opt.LevelSource == nil {
		return e.applied.External, false
	}
	v, err := e.opt.LevelSource.Level()
	if err != nil {
		e.log.Warn("read posture level source", "err", err)
		return e.applied.External, false
	}
	if v == e.lastSeen {
		return e.applied.External, false
	}
	e.lastSeen = v
	if !accord.Valid(v) || v == e.applied.BPFLevel {
		return e.applied.External, false // unwritten, or our own write
	}
	e.log.Info("posture level written to the BPF map by another program", "level", v)
	e.applied.External = v
	return v, true
}

// ownsMap reports whether a step writes the BPF map, so the engine must
// put the effective level back when another program overwrote it.
func (e *Engine) ownsMap() bool {
	for _, s := range e.steps {
		if s.Stage() == StageBPF {
			return true
		}
	}
	return false
}

// Effective applies the effective-level rule: the lowest valid level wins,
// config on a tie. external 0 means no request.
func Effective(config, external uint8) (uint8, string) {
	if accord.Valid(external) && external < config {
		return external, SourceBPFMap
	}
	return config, SourceConfig
}

// effective is Effective with the cluster's level as a third source: the
// lowest valid level wins; on a tie config wins, then the BPF map, then
// the cluster.
func (e *Engine) effective(external uint8) (uint8, string) {
	lvl, src := Effective(e.cfgLevel, external)
	if accord.Valid(e.clusterLevel) && e.clusterLevel < lvl {
		return e.clusterLevel, SourceCluster
	}
	return lvl, src
}

// evaluate runs a plan when the effective level or its accord differ from
// what was applied, or when force is set (start-up convergence).
func (e *Engine) evaluate(ctx context.Context, external uint8, force bool) {
	eff, src := e.effective(external)
	e.source = src
	from := e.applied.Level
	if !e.hasApply {
		from = eff
	}
	same := e.hasApply && eff == from && e.appliedAccord.Equal(e.accordOf(eff))
	switch {
	case !force && same && e.pending == nil:
	case !force && e.pending != nil && e.pending.To == eff:
		// The retry timer owns the failed plan.
	default:
		e.execute(ctx, from, eff, 0, false)
	}
	e.commitLevel(ctx, eff, src)
}

func (e *Engine) commitLevel(ctx context.Context, eff uint8, src string) {
	if ctx.Err() != nil {
		return
	}
	if _, err := e.st.CommitState(ctx, levelOps(e.cfgLevel, eff, src, e.applied.Seq)); err != nil {
		e.log.Warn("write posture state", "err", err)
	}
}

// execute runs the plan from one level to another. seq and resume are set
// when re-running an interrupted or failed plan.
func (e *Engine) execute(ctx context.Context, from, to uint8, seq uint64, resume bool) Report {
	start := e.now()
	a := e.accordOf(to)
	plan := BuildPlan(e.steps, from, to, a)
	if !resume {
		e.applied.Seq++
		seq = e.applied.Seq
	}
	// In memory at once; durable as soon as the data-plane gates have
	// moved. A crash before that leaves the previous record, whose level
	// differs from the (durable) config and map levels, so the restart
	// derives and runs the same plan.
	e.pending = &inflight{Seq: seq, From: from, To: to, Started: start.UnixNano()}
	e.applied.Level, e.hasApply, e.appliedAccord = to, true, a
	tr := Transition{Seq: seq, From: from, To: to, Accord: a, Resume: resume}
	rep := Report{Seq: seq, From: from, To: to, Source: e.source, Started: start, Result: ResultOK, Resume: resume}

	takeSnap := tr.Escalation() && e.snap == nil
	recorded := false
	record := func() {
		recorded = true
		if takeSnap {
			e.snap = e.takeSnapshot(ctx, from, seq, plan)
		}
		e.save()
	}
	var waits []int // indexes of steps still working in the background
	for i, s := range plan.Steps {
		if s.Stage() > StageBPF && !recorded {
			record()
			e.report(ctx, &Report{Seq: seq, From: from, To: to, Started: start,
				Duration: e.now().Sub(start), Result: ResultInProgress, Steps: rep.Steps})
		}
		sr := StepResult{Index: i, Name: s.Name(), Started: e.now(), Result: ResultOK}
		if err := ctx.Err(); err != nil {
			sr.Result, sr.Err = ResultSkipped, err.Error()
			rep.Steps = append(rep.Steps, sr)
			continue
		}
		err := e.apply(ctx, s, tr)
		sr.Duration = e.now().Sub(sr.Started)
		if err != nil {
			sr.Result, sr.Err = ResultFailed, err.Error()
		} else if s.Stage() == StageBPF {
			// The map holds what we wrote: any other value read later is
			// someone else's, even one equal to what was there before.
			e.applied.BPFLevel, e.lastSeen = to, to
		}
		if _, ok := s.(Background); ok && err == nil {
			waits = append(waits, i)
		}
		rep.Steps = append(rep.Steps, sr)
	}
	if !recorded && takeSnap {
		e.snap = e.takeSnapshot(ctx, from, seq, plan)
	}
	for _, i := range waits {
		sr := &rep.Steps[i]
		err := plan.Steps[i].(Background).Wait()
		sr.Duration = e.now().Sub(sr.Started)
		if err != nil {
			sr.Result, sr.Err = ResultFailed, err.Error()
		}
	}
	rep.Duration = e.now().Sub(start)
	failed := 0
	for _, s := range rep.Steps {
		if s.Result != ResultOK {
			failed++
			e.log.Warn("posture step failed", "seq", seq, "step", s.Name, "from", from, "to", to, "err", s.Err)
		}
	}
	switch {
	case failed == 0:
		rep.Result = ResultOK
		e.pending, e.backoff = nil, 0
		if e.snap != nil && to >= e.snap.Level {
			e.snap = nil // back where it was taken: everything is restored
		}
	case failed == len(rep.Steps):
		rep.Result = ResultFailed
	default:
		rep.Result = ResultPartial
	}
	if failed > 0 {
		e.backoff = min(max(2*e.backoff, e.opt.RetryMin), e.opt.RetryMax)
	}
	e.save()
	e.report(ctx, &rep)
	e.log.Info("posture transition", "seq", seq, "from", from, "to", to, "result", rep.Result,
		"took", rep.Duration, "resume", resume)
	if e.opt.OnReport != nil {
		e.opt.OnReport(rep)
	}
	return rep
}

// apply runs one step, through Restore when it has a snapshot to restore.
func (e *Engine) apply(ctx context.Context, s Step, tr Transition) error {
	if sn, ok := s.(Snapshotter); ok && e.snap != nil && tr.To > tr.From {
		if blob, ok := e.snap.Steps[s.Name()]; ok {
			return sn.Restore(ctx, tr, blob)
		}
	}
	return s.Apply(ctx, tr)
}

// takeSnapshot asks every Snapshotter in the plan for its record. A step
// that cannot snapshot is logged and left out: the escalation must not
// wait for it.
func (e *Engine) takeSnapshot(ctx context.Context, level uint8, seq uint64, plan Plan) *snapshot {
	snap := &snapshot{Level: level, Seq: seq, Steps: map[string][]byte{}}
	for _, s := range plan.Steps {
		sn, ok := s.(Snapshotter)
		if !ok {
			continue
		}
		b, err := sn.Snapshot(ctx)
		if err != nil {
			e.log.Error("snapshot posture step", "step", s.Name(), "err", err)
			continue
		}
		snap.Steps[s.Name()] = b
	}
	return snap
}

func (e *Engine) report(ctx context.Context, r *Report) {
	if ctx.Err() != nil {
		return
	}
	if _, err := e.st.CommitState(ctx, reportOps(r, e.lastSteps)); err != nil {
		e.log.Warn("write posture transition state", "err", err)
		return
	}
	e.lastSteps = len(r.Steps)
}

// elapsed returns how long after the transition started the named step
// finished.
func (r Report) elapsed(name string) (time.Duration, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Started.Sub(r.Started) + s.Duration, true
		}
	}
	return 0, false
}
