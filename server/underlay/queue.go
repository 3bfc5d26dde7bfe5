package underlay

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/gen/oc"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// record is one mutation as the component tracks it. The exported fields
// are its durable record (JSON in the store's meta).
type record struct {
	Request    mu.Proposal          `json:"request"` // what was compiled
	Seq        uint64               `json:"seq"`
	Status     string               `json:"status"`
	Reason     string               `json:"reason,omitempty"`
	Compiled   bool                 `json:"compiled"`
	Changes    []mu.Change          `json:"-"` // in its own record: see persist.go
	IntentSeq  uint64               `json:"intent_seq,omitempty"`
	CompiledAt int64                `json:"compiled_at,omitempty"`
	ExecutedAt int64                `json:"executed_at,omitempty"`
	Level      uint8                `json:"level,omitempty"`
	Diff       []string             `json:"-"` // with Changes
	Results    map[string]devResult `json:"results,omitempty"`
	Recorded   bool                 `json:"recorded,omitempty"` // the notary has it
	// Pushed is what the pushes changed on the devices, for the notary.
	Pushed []DeviceChange `json:"pushed,omitempty"`

	cfg       mu.Proposal // the config now
	deleted   bool        // gone from the tree while executing
	executing bool
	aborting  bool
	abortWhy  string
	cancel    context.CancelCauseFunc
	pending   map[string]mu.Executed // device -> executed intent once confirmed
	diffState bool                   // the state's diff leaf-list holds Diff
	// targets are the compiled configurations Capture made, reused by
	// start while the device's executed intent is still the one they
	// were compiled on (targetVer: its execVer then).
	targets   map[string]*oc.Device
	targetVer map[string]uint64
}

type devResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func (r *record) terminal() bool {
	return r.Status == stExecuted || r.Status == stFailed || r.Status == stDenied
}

// syncRecords follows the proposals in the tree: new ones join the queue
// in order of appearance, removed ones leave it (a push in flight is
// stopped), and a proposal whose request changed before it executed is
// compiled again.
func (l *loop) syncRecords(props []mu.Proposal) {
	rank := map[string]int{}
	for i, id := range l.appeared {
		if _, ok := rank[id]; !ok {
			rank[id] = i
		}
	}
	l.appeared = l.appeared[:0]
	props = slices.Clone(props)
	slices.SortStableFunc(props, func(a, b mu.Proposal) int {
		ra, oka := rank[a.ID]
		rb, okb := rank[b.ID]
		switch {
		case oka && okb:
			return cmp.Compare(ra, rb)
		case oka:
			return -1
		case okb:
			return 1
		}
		// Neither was seen in the feed: made after the last commit read
		// (the tree read caught them), or before a restart. By id, as
		// FromTree sorted them.
		return 0
	})
	seen := map[string]bool{}
	for _, p := range props {
		seen[p.ID] = true
		r := l.recs[p.ID]
		if r == nil {
			r = l.loadRecord(p.ID)
		}
		if r == nil {
			l.nextSeq++
			r = &record{Request: p, Seq: l.nextSeq, Status: stProposed}
			l.recs[p.ID] = r
			l.persistRecord(p.ID, r)
			l.persistIndex()
		}
		r.cfg = p
		if !r.terminal() && !r.executing && r.Compiled && !r.Request.SameRequest(p) {
			r.Compiled, r.Changes, r.Diff, r.diffState = false, nil, nil, false
			r.Reason = "the proposal changed; compiled again"
			l.persistChanges(p.ID, r)
			l.persistRecord(p.ID, r)
		}
		l.dirtyRecs[p.ID] = true
	}
	for id, r := range l.recs {
		if seen[id] {
			continue
		}
		if r.executing {
			r.deleted = true
			r.aborting, r.abortWhy = true, "the proposal was deleted"
			r.cancel(errors.New(r.abortWhy))
			continue // dropped when its pushes finish
		}
		delete(l.recs, id)
		l.dropRecord(id)
		l.persistIndex()
	}
	l.dirtyRoot = true
}

// evaluate walks the queue in order and compiles and starts what the
// accord allows; everything else gets its reason.
func (l *loop) evaluate() {
	if !l.haveAcc {
		return
	}
	ids := make([]string, 0, len(l.recs))
	for id := range l.recs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(l.recs[a].Seq, l.recs[b].Seq) })
	for _, id := range ids {
		r := l.recs[id]
		if r.terminal() || r.executing {
			continue
		}
		status, reason := r.Status, r.Reason
		if !r.Compiled {
			g := mu.Gate(l.acc, r.cfg, false)
			if !g.Compile {
				l.setStatus(id, r, stProposed, g.Reason)
				continue
			}
			if !l.compile(id, r) {
				continue
			}
		}
		g := mu.Gate(l.acc, r.cfg, true)
		switch {
		case !g.Execute && r.cfg.Emergency && strings.Contains(g.Reason, "held until execute"):
			l.setStatus(id, r, stApproved, g.Reason)
		case !g.Execute:
			l.setStatus(id, r, stProposed, g.Reason)
		default:
			if busy := l.busyDevice(r); busy != "" {
				l.setStatus(id, r, stApproved, "queued behind "+busy)
				continue
			}
			l.start(id, r)
		}
		if r.Status != status || r.Reason != reason {
			l.persistRecord(id, r)
		}
	}
	l.dirtyRoot = true
}

func (l *loop) setStatus(id string, r *record, status, reason string) {
	if r.Status == status && r.Reason == reason {
		return
	}
	r.Status, r.Reason = status, reason
	r.Level = l.acc.Level
	l.dirtyRecs[id] = true
	l.persistRecord(id, r)
}

// compile captures the proposal against the intent and the executed
// intents; a proposal that cannot compile is denied for good.
func (l *loop) compile(id string, r *record) bool {
	exec := map[string]mu.Executed{}
	for name, d := range l.devs {
		exec[name] = d.exec
	}
	start := time.Now()
	changes, targets, err := l.c.opt.Compiler.Capture(l.intent, exec, r.cfg)
	if err != nil {
		l.setStatus(id, r, stDenied, "compile: "+err.Error())
		r.Results = nil
		l.c.log.Warn("mutation denied", "mutation", id, "err", err)
		return false
	}
	r.Request, r.Compiled, r.Changes = r.cfg, true, changes
	r.IntentSeq, r.CompiledAt = l.intentSeq, l.c.opt.Now().UnixNano()
	r.Diff = nil
	r.targets, r.targetVer = map[string]*oc.Device{}, map[string]uint64{}
	for i, ch := range changes {
		d := l.devs[ch.Device]
		newTarget := targets[i]
		r.targets[ch.Device], r.targetVer[ch.Device] = newTarget, d.execVer
		ops, err := mu.Diff(d.target, newTarget, d.target)
		if err != nil {
			l.setStatus(id, r, stDenied, "compile: "+err.Error())
			return false
		}
		for _, op := range ops {
			r.Diff = append(r.Diff, ch.Device+" "+op.String())
		}
	}
	r.Reason = ""
	r.diffState = false
	l.dirtyRecs[id] = true
	l.persistChanges(id, r)
	l.persistRecord(id, r)
	l.c.log.Info("mutation compiled", "mutation", id, "devices", len(changes), "diff", len(r.Diff), "took", time.Since(start))
	return true
}

// busyDevice names a device of r that another push holds, as "ID on DEVICE".
func (l *loop) busyDevice(r *record) string {
	for _, ch := range r.Changes {
		if d := l.devs[ch.Device]; d != nil && d.busy != "" {
			who := d.busy
			if who == repairBusy {
				who = "a drift repair"
			}
			return who + " on " + ch.Device
		}
	}
	return ""
}

// start pushes each device's new target.
func (l *loop) start(id string, r *record) {
	ctx, cancel := context.WithCancelCause(l.ctx)
	r.executing, r.aborting, r.abortWhy, r.cancel = true, false, "", cancel
	r.pending = map[string]mu.Executed{}
	r.Results = map[string]devResult{}
	r.Status, r.Reason, r.Level = stExecuting, "", l.acc.Level
	l.dirtyRecs[id] = true
	rollback := l.rollback()
	for _, ch := range r.Changes {
		d := l.devs[ch.Device]
		if d == nil {
			r.Results[ch.Device] = devResult{Status: resRejected, Error: "the device is no longer in the intent"}
			continue
		}
		next := d.exec.Apply(ch)
		target := r.targets[ch.Device]
		if target == nil || r.targetVer[ch.Device] != d.execVer {
			var err error
			if target, err = l.c.opt.Compiler.Target(ch.Device, next); err != nil {
				r.Results[ch.Device] = devResult{Status: resRejected, Error: err.Error()}
				continue
			}
		}
		r.Results[ch.Device] = devResult{Status: resPending}
		r.pending[ch.Device] = next
		d.busy = id
		l.dirtyDevs[ch.Device] = true
		job := &pushJob{ctx: ctx, id: "kedge-" + id + "-" + strconv.FormatUint(r.Seq, 10), target: target, scope: d.target,
			mutation: id, rollback: rollback}
		d.man.in.Put(func(m *devman) { m.push(m.ctx, job) })
	}
	l.persistRecord(id, r)
	if len(r.pending) == 0 {
		l.finish(id, r)
	}
}

func (l *loop) rollback() time.Duration {
	if l.c.opt.Rollback > 0 {
		return l.c.opt.Rollback
	}
	return time.Duration(l.intent.CommitConfirm) * time.Second
}

func (l *loop) onPush(ev evPush) {
	d := l.devs[ev.device]
	stale := d == nil || d.man == nil || d.man.gen != ev.gen
	res := ev.res
	if stale && (res.status == resConfirmed || res.status == resUnchanged) {
		// The device was reconfigured meanwhile: what it holds is no
		// longer known to be this push.
		res = pushResult{status: resUnreachable, err: errors.New("the device's config changed during the push")}
	}
	// The push is over whatever manager ran it: the device is free again
	// (a reconfigured device's new manager never got this job).
	if d != nil && (d.busy == ev.job.mutation || (ev.job.mutation == "" && d.busy == repairBusy)) {
		d.busy = ""
		l.dirtyDevs[ev.device] = true
		if ev.job.mutation == "" {
			d.repairCancel = nil
		}
	}
	if d != nil && !stale {
		l.dirtyDevs[ev.device] = true
		d.lastPush = ev.at
		// Failed is a push the device took and gave back or refused; an
		// unreachable device is shown as such, an abort is no failure.
		d.failed = res.status == resRejected || res.status == resRolledBack
		switch {
		case res.err != nil:
			d.lastErr = res.err.Error()
		default:
			d.lastErr = ""
		}
		if res.status == resUnreachable {
			d.reachable = false
		}
		if res.status == resConfirmed || res.status == resUnchanged {
			d.target = ev.job.target
			if len(res.ops) > 0 || ev.job.mutation == "" {
				d.drift, d.driftSince = nil, time.Time{}
			}
		}
	}
	if ev.job.mutation == "" {
		l.onRepair(ev, res)
		l.evaluate() // mutations queued behind the repair
		return
	}
	r := l.recs[ev.job.mutation]
	if r == nil || !r.executing {
		return
	}
	next, ok := r.pending[ev.device]
	if !ok {
		return
	}
	delete(r.pending, ev.device)
	dr := devResult{Status: res.status}
	if res.err != nil {
		dr.Error = res.err.Error()
	}
	if res.status == resAborted {
		dr.Status = resPending
	}
	r.Results[ev.device] = dr
	if (res.status == resConfirmed || res.status == resUnchanged) && d != nil && !stale {
		d.exec, d.applied = next, r.Seq
		d.execVer++
		l.persistDevice(ev.device, d)
		r.Pushed = append(r.Pushed, deviceChanges(ev.device, res)...)
	}
	l.dirtyRecs[ev.job.mutation] = true
	if len(r.pending) == 0 {
		l.finish(ev.job.mutation, r)
	}
	l.evaluate()
}

// finish settles a mutation whose pushes all returned.
func (l *loop) finish(id string, r *record) {
	r.executing = false
	r.cancel(nil)
	var failed, aborted []string
	for _, dev := range slices.Sorted(mapKeys(r.Results)) {
		res := r.Results[dev]
		switch res.Status {
		case resConfirmed, resUnchanged:
		case resPending:
			aborted = append(aborted, dev)
		default:
			failed = append(failed, dev+": "+res.Status+": "+res.Error)
		}
	}
	switch {
	case r.deleted:
		delete(l.recs, id)
		l.dropRecord(id)
		l.persistIndex()
		return
	case len(failed) > 0:
		r.Status, r.Reason = stFailed, strings.Join(failed, "; ")
		r.ExecutedAt = l.c.opt.Now().UnixNano()
		l.c.log.Warn("mutation failed", "mutation", id, "reason", r.Reason)
	case len(aborted) > 0:
		// Stopped by the posture level before it changed those devices:
		// it waits for a level that allows it, and re-executes then
		// (devices it already changed have nothing left to do).
		r.Status, r.Reason = stProposed, "interrupted: "+r.abortWhy
		l.c.log.Info("mutation interrupted", "mutation", id, "reason", r.abortWhy)
	default:
		r.Status, r.Reason = stExecuted, ""
		r.ExecutedAt = l.c.opt.Now().UnixNano()
		l.c.log.Info("mutation executed", "mutation", id, "level", r.Level, "devices", len(r.Results))
	}
	if r.Status == stExecuted || (r.Status == stFailed && len(r.Pushed) > 0) {
		l.unnotary = append(l.unnotary, id)
	} else {
		r.Recorded = true
	}
	r.aborting = false
	l.dirtyRecs[id] = true
	l.persistRecord(id, r)
}

// maybeRepair starts a drift repair of a device if the accord repairs and
// nothing else is pushing to it.
func (l *loop) maybeRepair(name string) {
	d := l.devs[name]
	if d == nil || len(d.drift) == 0 || d.busy != "" || d.target == nil || !l.haveAcc || !mu.Repairs(l.acc) {
		return
	}
	if now := l.c.opt.Now(); now.Before(d.repairAfter) {
		return // a repair failed lately: its retry is scheduled
	}
	// The count is durable before the repair runs: a repair's id (its
	// commit on the device, its artifact's mutation id) is never reused.
	l.repairs++
	l.persistIndex()
	ctx, cancel := context.WithCancelCause(l.ctx)
	d.busy, d.repairCancel = repairBusy, cancel
	job := &pushJob{ctx: ctx, id: "kedge-repair-" + name + "-" + strconv.FormatUint(l.repairs, 10), repair: l.repairs,
		target: d.target, scope: d.target, rollback: l.rollback()}
	l.c.log.Info("repairing drift", "device", name, "paths", d.drift, "level", l.acc.Level)
	d.man.in.Put(func(m *devman) { m.push(m.ctx, job) })
	l.dirtyDevs[name] = true
}

// onRepair records a repair and, when it failed, backs off before the
// next one (doubling from RetryMin up to RetryMax): a device that keeps
// refusing is not hammered, and its drift stays reported meanwhile.
func (l *loop) onRepair(ev evPush, res pushResult) {
	if res.status == resConfirmed && len(res.ops) > 0 {
		l.repairRecord(ev, res)
	}
	d := l.devs[ev.device]
	if d == nil {
		return
	}
	switch res.status {
	case resConfirmed, resUnchanged, resAborted:
		d.repairBackoff, d.repairAfter = 0, time.Time{}
		return
	}
	o := l.c.opt
	d.repairBackoff = max(o.RetryMin, min(2*d.repairBackoff, o.RetryMax))
	d.repairAfter = o.Now().Add(d.repairBackoff)
	name := ev.device
	time.AfterFunc(d.repairBackoff, func() { l.c.in.Put(evRetryRepair{device: name}) })
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
