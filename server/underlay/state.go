package underlay

import (
	"context"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// flush writes the state of what changed, answers the posture steps whose
// stopped pushes have finished and hands executed mutations to the notary.
func (l *loop) flush() {
	l.notary()
	l.answerWaiters()
	ops := l.stateOps()
	if len(ops) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	if err := l.commitState(ctx, ops); err != nil && l.ctx.Err() == nil {
		l.c.log.Warn("write underlay state", "err", err)
		// Unknown what the tree holds: write everything again next time.
		l.dirtyRoot = true
		for id, r := range l.recs {
			r.diffState = false
			l.dirtyRecs[id] = true
		}
		for name := range l.devs {
			l.dirtyDevs[name] = true
		}
	}
}

func (l *loop) answerWaiters() {
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if l.waiting(w) {
			kept = append(kept, w)
			continue
		}
		w.reply <- nil
	}
	l.waiters = kept
}

func (l *loop) waiting(w *waiter) bool {
	for _, id := range w.recs {
		if r := l.recs[id]; r != nil && r.executing {
			return true
		}
	}
	for _, name := range w.devs {
		if d := l.devs[name]; d != nil && d.busy == repairBusy {
			return true
		}
	}
	return false
}

// stateOps builds the operations for everything marked dirty and clears
// the marks.
func (l *loop) stateOps() []store.Op {
	var out []store.Op
	if l.dirtyRoot {
		l.dirtyRoot = false
		st := kedgepath.Root().Kedge().Underlay().State()
		out = append(out, store.Update(st.CommitConfirmSeconds(), l.intent.CommitConfirm))
		if l.haveAcc {
			out = append(out,
				store.Update(st.Level(), l.acc.Level),
				store.Update(st.CompilerFrozen(), l.acc.CompilerFrozen),
				store.Update(st.DriftIntervalMs(), uint32(l.interval()/time.Millisecond)))
		}
		drift, waiting := false, uint32(0)
		for _, d := range l.devs {
			drift = drift || len(d.drift) > 0
		}
		for _, r := range l.recs {
			if r.Status == stProposed || r.Status == stApproved {
				waiting++
			}
		}
		out = append(out, store.Update(st.DriftDetected(), drift), store.Update(st.Waiting(), waiting),
			timeOp(st.LastDriftCheck(), l.lastCheck))
	}
	for name := range l.dirtyDevs {
		if d := l.devs[name]; d != nil {
			out = append(out, l.deviceOps(name, d)...)
		}
		delete(l.dirtyDevs, name)
	}
	for id := range l.dirtyRecs {
		if r := l.recs[id]; r != nil && !r.deleted {
			out = append(out, l.recordOps(id, r)...)
		}
		delete(l.dirtyRecs, id)
	}
	return out
}

func (d *devState) status() kedgepath.DeviceStatus {
	switch {
	case d.busy != "":
		return kedgepath.DeviceStatusPushing
	case d.contacted && !d.reachable:
		return kedgepath.DeviceStatusUnreachable
	case d.failed:
		return kedgepath.DeviceStatusFailed
	case len(d.drift) > 0:
		return kedgepath.DeviceStatusDrifted
	case d.reachable:
		return kedgepath.DeviceStatusInSync
	}
	return kedgepath.DeviceStatusUnknown
}

func (l *loop) deviceOps(name string, d *devState) []store.Op {
	st := kedgepath.Root().Kedge().Underlay().Devices().Device(name).State()
	c := d.cfg
	addr := ""
	if c.Address.IsValid() {
		addr = c.Address.String()
	}
	ops := []store.Op{
		strOp(st.Name(), c.Name), strOp(st.Address(), addr), store.Update(st.Port(), c.Port),
		strOp(st.Vendor(), c.Vendor), strOp(st.Role(), c.Role),
		store.Update(st.CommitConfirmed(), c.CommitConfirmed), store.Update(st.OnChange(), c.OnChange),
		strOp(st.ServerName(), c.ServerName), strOp(st.CaFile(), c.CAFile), strOp(st.CertFile(), c.CertFile),
		strOp(st.KeyFile(), c.KeyFile), strOp(st.Username(), c.Username), strOp(st.PasswordFile(), c.PasswordFile),
		store.Update(st.Status(), d.status()), store.Update(st.Reachable(), d.reachable),
		timeOp(st.LastPush(), d.lastPush), strOp(st.LastError(), d.lastErr),
		store.Update(st.AppliedSequence(), d.applied), store.Update(st.Drift(), len(d.drift) > 0),
		timeOp(st.DriftSince(), d.driftSince), listOp(st.DriftPaths(), d.drift), timeOp(st.LastSync(), d.lastSync),
	}
	if d.watch == "" {
		ops = append(ops, store.Delete(st.Watch()))
	} else {
		ops = append(ops, store.Update(st.Watch(), kedgepath.DeviceWatch(d.watch)))
	}
	return ops
}

func (l *loop) recordOps(id string, r *record) []store.Op {
	m := kedgepath.Root().Kedge().Underlay().Mutations().Mutation(id)
	st := m.State()
	p := r.cfg
	ops := []store.Op{
		strOp(st.Id(), p.ID), strOp(st.Proposer(), p.Proposer), strOp(st.Description(), p.Description),
		listOp(st.Devices(), p.Devices), listOp(st.Vlans(), p.VLANs),
		store.Update(st.Emergency(), p.Emergency), store.Update(st.Execute(), p.Execute),
		store.Update(st.Status(), kedgepath.MutationStatus(r.Status)), strOp(st.Reason(), r.Reason),
		store.Update(st.Sequence(), r.Seq), store.Update(st.IntentSequence(), r.IntentSeq),
		timeOp(st.Compiled(), unixTime(r.CompiledAt)), timeOp(st.Executed(), unixTime(r.ExecutedAt)),
	}
	if p.Tier != "" {
		ops = append(ops, store.Update(st.Tier(), kedgepath.Tier(p.Tier)))
	}
	if r.Level != 0 {
		ops = append(ops, store.Update(st.PostureLevel(), r.Level))
	}
	if !r.diffState {
		// Written once per compilation: for 1,000 VLANs on 10 devices it
		// is 10,000 entries.
		ops = append(ops, listOp(st.Diff(), r.Diff))
		r.diffState = true
	}
	ops = append(ops, store.Delete(m.Results()))
	for dev, dr := range r.Results {
		rs := m.Results().Result(dev).State()
		ops = append(ops, strOp(rs.Device(), dev), store.Update(rs.Status(), kedgepath.ResultStatus(dr.Status)),
			strOp(rs.Error(), dr.Error))
	}
	return ops
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// strOp writes a string leaf; an empty one deletes it.
func strOp[P store.Leaf[string]](p P, v string) store.Op {
	if v == "" {
		return store.Delete(p)
	}
	return store.Update(p, v)
}

// timeOp writes a timestamp in nanoseconds; the zero time deletes it.
func timeOp[P store.Leaf[uint64]](p P, t time.Time) store.Op {
	if t.IsZero() {
		return store.Delete(p)
	}
	return store.Update(p, uint64(t.UnixNano()))
}

// listOp writes a leaf-list; an empty one deletes it (the tree does not
// tell an empty leaf-list from an absent one).
func listOp[P store.Leaf[[]T], T any](p P, vs []T) store.Op {
	if len(vs) == 0 {
		return store.Delete(p)
	}
	return store.Update(p, vs)
}

// commitState commits ops; an entry deleted since the ops were built fails
// the whole commit, so then only the ops of entries that still exist are
// committed again.
func (l *loop) commitState(ctx context.Context, list []store.Op) error {
	_, err := l.c.st.CommitState(ctx, list)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var live []store.Op
	if rerr := l.c.st.Read(func(t *tree.Tree) error {
		for _, op := range list {
			if _, ok, _ := t.Lookup(entryOf(op.Path)); ok {
				live = append(live, op)
			}
		}
		return nil
	}); rerr != nil {
		return rerr
	}
	if len(live) == len(list) {
		return err
	}
	_, err = l.c.st.CommitState(ctx, live)
	return err
}

// entryOf is the config list entry (device or mutation) a state path is
// under, or /kedge/underlay.
func entryOf(p []*gpb.PathElem) []*gpb.PathElem {
	if len(p) >= 4 && len(p[3].GetKey()) > 0 {
		return p[:4]
	}
	return p[:2]
}
