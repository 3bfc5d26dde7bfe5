package underlay

import (
	"context"
	"strconv"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

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
		o := &ops{prefix: underlayElems(elem("state"))}
		o.uint("commit-confirm-seconds", uint64(l.intent.CommitConfirm))
		if l.haveAcc {
			o.uint("level", uint64(l.acc.Level))
			o.boolean("compiler-frozen", l.acc.CompilerFrozen)
			o.uint("drift-interval-ms", uint64(l.interval()/time.Millisecond))
		}
		drift, waiting := false, 0
		for _, d := range l.devs {
			drift = drift || len(d.drift) > 0
		}
		for _, r := range l.recs {
			if r.Status == stProposed || r.Status == stApproved {
				waiting++
			}
		}
		o.boolean("drift-detected", drift)
		o.uint("waiting", uint64(waiting))
		o.time("last-drift-check", l.lastCheck)
		out = append(out, o.list...)
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

func (d *devState) status() string {
	switch {
	case d.busy != "":
		return dsPushing
	case d.contacted && !d.reachable:
		return dsUnreachable
	case d.failed:
		return dsFailed
	case len(d.drift) > 0:
		return dsDrifted
	case d.reachable:
		return dsInSync
	}
	return dsUnknown
}

func (l *loop) deviceOps(name string, d *devState) []store.Op {
	o := &ops{prefix: underlayElems(elem("devices"), elem("device", "name", name), elem("state"))}
	c := d.cfg
	o.str("name", c.Name)
	if c.Address.IsValid() {
		o.str("address", c.Address.String())
	}
	o.uint("port", uint64(c.Port))
	o.str("vendor", c.Vendor)
	o.str("role", c.Role)
	o.boolean("commit-confirmed", c.CommitConfirmed)
	o.boolean("on-change", c.OnChange)
	o.str("server-name", c.ServerName)
	o.str("ca-file", c.CAFile)
	o.str("cert-file", c.CertFile)
	o.str("key-file", c.KeyFile)
	o.str("username", c.Username)
	o.str("password-file", c.PasswordFile)
	o.str("status", d.status())
	o.boolean("reachable", d.reachable)
	o.str("watch", d.watch)
	o.time("last-push", d.lastPush)
	o.str("last-error", d.lastErr)
	o.uint("applied-sequence", d.applied)
	o.boolean("drift", len(d.drift) > 0)
	o.time("drift-since", d.driftSince)
	o.strs("drift-paths", d.drift)
	o.time("last-sync", d.lastSync)
	return o.list
}

func (l *loop) recordOps(id string, r *record) []store.Op {
	base := underlayElems(elem("mutations"), elem("mutation", "id", id))
	o := &ops{prefix: append(base, elem("state"))}
	p := r.cfg
	o.str("id", p.ID)
	o.str("proposer", p.Proposer)
	o.str("description", p.Description)
	o.strs("devices", p.Devices)
	vl := make([]*gpb.TypedValue, len(p.VLANs))
	for i, v := range p.VLANs {
		vl[i] = &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(v)}}
	}
	o.list = append(o.list, leafList(o.at(elem("vlans")), vl))
	o.boolean("emergency", p.Emergency)
	o.boolean("execute", p.Execute)
	o.str("tier", p.Tier)
	o.str("status", r.Status)
	o.str("reason", r.Reason)
	o.uint("sequence", r.Seq)
	o.uint("intent-sequence", r.IntentSeq)
	o.time("compiled", unixTime(r.CompiledAt))
	o.time("executed", unixTime(r.ExecutedAt))
	o.uint("posture-level", uint64(r.Level))
	if !r.diffState {
		// Written once per compilation: for 1,000 VLANs on 10 devices it
		// is 10,000 entries.
		o.strs("diff", r.Diff)
		r.diffState = true
	}
	res := &ops{prefix: append(base, elem("results"))}
	res.del()
	for dev, dr := range r.Results {
		ro := &ops{prefix: append(append([]*gpb.PathElem{}, base...), elem("results"), elem("result", "device", dev), elem("state"))}
		ro.str("device", dev)
		ro.str("status", dr.Status)
		ro.str("error", dr.Error)
		res.list = append(res.list, ro.list...)
	}
	return append(o.list, res.list...)
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
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

// ops builds store operations under one path prefix.
type ops struct {
	prefix []*gpb.PathElem
	list   []store.Op
}

func elem(name string, keys ...string) *gpb.PathElem {
	e := &gpb.PathElem{Name: name}
	if len(keys) > 0 {
		e.Key = map[string]string{}
		for i := 0; i+1 < len(keys); i += 2 {
			e.Key[keys[i]] = keys[i+1]
		}
	}
	return e
}

func underlayElems(rest ...*gpb.PathElem) []*gpb.PathElem {
	return append([]*gpb.PathElem{elem("kedge"), elem("underlay")}, rest...)
}

func (o *ops) at(rel ...*gpb.PathElem) []*gpb.PathElem {
	p := make([]*gpb.PathElem, 0, len(o.prefix)+len(rel))
	return append(append(p, o.prefix...), rel...)
}

func (o *ops) set(leaf string, v *gpb.TypedValue) {
	o.list = append(o.list, store.Op{Kind: store.OpUpdate, Path: o.at(elem(leaf)), Val: v})
}

func (o *ops) del(rel ...*gpb.PathElem) {
	o.list = append(o.list, store.Op{Kind: store.OpDelete, Path: o.at(rel...)})
}

// str writes a string leaf; an empty one deletes it.
func (o *ops) str(leaf, v string) {
	if v == "" {
		o.del(elem(leaf))
		return
	}
	o.set(leaf, &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}})
}

func (o *ops) uint(leaf string, v uint64) {
	o.set(leaf, &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}})
}

func (o *ops) boolean(leaf string, v bool) {
	o.set(leaf, &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: v}})
}

// time writes a timestamp in nanoseconds; the zero time deletes it.
func (o *ops) time(leaf string, t time.Time) {
	if t.IsZero() {
		o.del(elem(leaf))
		return
	}
	o.uint(leaf, uint64(t.UnixNano()))
}

// strs writes a leaf-list; an empty one deletes it.
func (o *ops) strs(leaf string, vs []string) {
	el := make([]*gpb.TypedValue, len(vs))
	for i, v := range vs {
		el[i] = &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}
	}
	o.list = append(o.list, leafList(o.at(elem(leaf)), el))
}

func leafList(path []*gpb.PathElem, el []*gpb.TypedValue) store.Op {
	if len(el) == 0 {
		return store.Op{Kind: store.OpDelete, Path: path}
	}
	return store.Op{Kind: store.OpUpdate, Path: path,
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: el}}}}
}

// notary hands executed mutations to the notary, oldest first; one it
// refuses is tried again at the next flush.
func (l *loop) notary() {
	if l.c.opt.Notary == nil {
		for _, id := range l.unnotary {
			if r := l.recs[id]; r != nil {
				r.Pushed = nil // nobody wants them: do not keep them
			}
		}
		l.unnotary = nil
		return
	}
	for len(l.unnotary) > 0 {
		id := l.unnotary[0]
		r := l.recs[id]
		if r == nil || r.Recorded {
			l.unnotary = l.unnotary[1:]
			continue
		}
		m := ExecutedMutation{ID: id, Sequence: r.Seq, Time: unixTime(r.ExecutedAt), Proposer: r.Request.Proposer,
			Tier: r.Request.Tier, Level: r.Level, Changes: r.Pushed}
		ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
		err := l.c.opt.Notary.RecordUnderlay(ctx, m)
		cancel()
		if err != nil {
			l.c.log.Warn("notary refused an executed mutation; retrying", "mutation", id, "err", err)
			return
		}
		r.Recorded, r.Pushed = true, nil
		l.persistRecord(id, r)
		l.unnotary = l.unnotary[1:]
	}
}

// repairRecord hands a drift repair to the notary.
func (l *loop) repairRecord(ev evPush, res pushResult) {
	if l.c.opt.Notary == nil {
		return
	}
	m := ExecutedMutation{ID: "repair/" + ev.device + "/" + strconv.FormatUint(l.repairs, 10), Time: ev.at,
		Proposer: "kedge", Tier: "master", Level: l.acc.Level, Changes: deviceChanges(ev.device, res.ops)}
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	if err := l.c.opt.Notary.RecordUnderlay(ctx, m); err != nil {
		l.c.log.Warn("notary refused a drift repair", "device", ev.device, "err", err)
	}
}
