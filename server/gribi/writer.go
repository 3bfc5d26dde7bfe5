package gribi

import (
	"context"

	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// work is one item for the writer: a session's operations, a Flush, the
// end of a DELETE session, or a read of the RIB.
type work struct {
	sess  *session
	ops   []*aft.Op
	flush chan error
	end   *session
	read  func(*aft.RIB)
	// from is the Flush RPC's context (its identity; see actingFor).
	from context.Context
}

// actingFor is the writer's context carrying the values of the RPC a
// commit is made for: the store's annotation of the commit (the notary's
// record of who wrote) then names the gRIBI client rather than the
// daemon, while the commit stays bound to the writer's lifetime, not to
// an RPC that may already have ended (a DELETE session's end).
type actingFor struct {
	context.Context
	rpc context.Context
}

func (a actingFor) Value(k any) any {
	if v := a.rpc.Value(k); v != nil {
		return v
	}
	return a.Context.Value(k)
}

// commitContext is ctx acting for rpc (ctx itself when rpc is nil).
func commitContext(ctx, rpc context.Context) context.Context {
	if rpc == nil {
		return ctx
	}
	return actingFor{Context: ctx, rpc: rpc}
}

// batchRPC is the RPC context a batch's commit acts for: its sessions'
// when they all act for one identity, else none (the commit is then the
// daemon's own; each entry still names its session, and the session
// record its identity).
func batchRPC(batch []work) context.Context {
	for _, w := range batch[1:] {
		if w.sess.who != batch[0].sess.who {
			return nil
		}
	}
	return batch[0].sess.rpc
}

// writer applies the work in arrival order. Operations that arrive
// together (however many sessions and requests they came in) are applied
// in one batch: one commit.
func (s *Service) writer(ctx context.Context) {
	var batch []work
	n := 0
	for {
		var w work
		select {
		case w = <-s.work:
		case <-ctx.Done():
			s.fail(batch)
			return
		}
		for {
			if w.ops != nil {
				batch = append(batch, w)
				n += len(w.ops)
			} else {
				s.apply(ctx, batch)
				batch, n = batch[:0], 0
				s.other(ctx, w)
			}
			if n >= s.cfg.MaxBatch {
				break
			}
			more := false
			select {
			case w = <-s.work:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		s.apply(ctx, batch)
		batch, n = batch[:0], 0
	}
}

// fail answers work the writer will never do.
func (s *Service) fail(batch []work) {
	for _, w := range batch {
		var rs []*spb.AFTResult
		for _, op := range w.ops {
			rs = append(rs, &spb.AFTResult{Id: op.ID, Status: spb.AFTResult_FAILED,
				ErrorDetails: &spb.AFTErrorDetails{ErrorMessage: errClosed.Error()}})
		}
		w.sess.send(&spb.ModifyResponse{Result: rs})
		w.sess.done(len(w.ops))
	}
}

// other does a work item that is not operations.
func (s *Service) other(ctx context.Context, w work) {
	switch {
	case w.read != nil:
		w.read(s.rib)
	case w.flush != nil:
		keys := s.rib.Flush()
		w.flush <- s.commitRemoval(commitContext(ctx, w.from), keys)
	case w.end != nil:
		keys := s.rib.DeleteSession(w.end.id)
		if err := s.commitRemoval(commitContext(ctx, w.end.rpc), keys); err != nil {
			s.log.Warn("remove a DELETE session's entries", "session", w.end.id, "err", err)
		}
	}
}

// commitRemoval removes the entries of keys (and session records no entry
// uses any more) from the tree. On failure the RIB is rebuilt from the
// tree, which still holds them.
func (s *Service) commitRemoval(ctx context.Context, keys []aft.Key) error {
	if len(keys) == 0 {
		return nil
	}
	ops := make([]store.Op, 0, len(keys)+1)
	for _, k := range keys {
		ops = append(ops, deleteOp(k))
	}
	ops = append(ops, s.unusedSessions()...)
	c, err := s.cfg.Store.Commit(ctx, ops)
	if err != nil {
		s.reload()
		return err
	}
	s.fib.changed(c.Seq)
	return nil
}

// unusedSessions deletes the records of ended sessions whose entries
// are all gone (the writer's RIB is what the tree holds).
func (s *Service) unusedSessions() []store.Op {
	used := map[string]bool{}
	for _, k := range []aft.Kind{aft.KindNextHop, aft.KindNextHopGroup, aft.KindIPv4, aft.KindIPv6} {
		s.rib.Entries(k, func(e *aft.Entry) bool {
			used[e.Meta.Session] = true
			return true
		})
	}
	s.mu.Lock()
	live := map[string]bool{}
	for ss := range s.sessions {
		live[ss.id] = true
	}
	s.mu.Unlock()
	var ops []store.Op
	s.cfg.Store.Read(func(t *tree.Tree) error {
		st, _ := load(t)
		for id := range st.sessions {
			if !used[id] && !live[id] {
				ops = append(ops, store.Delete(aftPath.Sessions().Session(id)))
			}
		}
		return nil
	})
	return ops
}

// reload rebuilds the RIB from the tree after a commit failed: the RIB
// had already applied what the tree refused.
func (s *Service) reload() {
	r := aft.New()
	err := s.cfg.Store.Read(func(t *tree.Tree) error {
		st, err := load(t)
		if err != nil {
			return err
		}
		for i := range st.entries {
			r.Apply(&aft.Op{ID: uint64(i + 1), Verb: aft.Add, Entry: st.entries[i]})
		}
		return nil
	})
	if err != nil {
		s.log.Error("reload gribi rib from the tree", "err", err)
		return
	}
	s.rib = r
}

// apply runs a batch of operations through the RIB, commits what it
// accepted in one durable commit, and answers: RIB_PROGRAMMED (once the
// commit is on disk) or FAILED, and for FIB-ACK sessions a FIB wait.
func (s *Service) apply(ctx context.Context, batch []work) {
	if len(batch) == 0 {
		return
	}
	// Room for the usual case (an IP entry is one operation): growing
	// these by doubling was a tenth of what a bulk load allocated. The
	// results of all operations go into one slice (not a slice per
	// operation), and an entry's key is taken from its op when needed.
	n := 0
	for _, w := range batch {
		n += len(w.ops)
	}
	s.rib.Reserve(n)
	outs := make([]aft.Result, 0, n)
	ops := make([]store.Op, 0, n+8)
	fresh := map[*session]bool{}
	var lw leafWrites
	for _, w := range batch {
		for _, op := range w.ops {
			done := len(outs)
			outs = s.rib.AppendApply(outs, op)
			for _, r := range outs[done:] {
				if !r.OK {
					continue
				}
				if r.Op.Verb == aft.Delete {
					if _, still := s.rib.Get(r.Op.Entry.Key()); !still {
						ops = append(ops, deleteOp(r.Op.Entry.Key()))
					}
				} else {
					ops = entryOps(&lw, ops, &r.Op.Entry, r.Existed)
					if ss := r.Op.Tag.(*session); !ss.recorded {
						fresh[ss] = true
					}
				}
			}
		}
	}
	for ss := range fresh {
		ops = append(ops, ss.record().ops()...)
	}
	var seq uint64
	var cerr error
	if len(ops) > 0 {
		c, err := s.cfg.Store.Commit(commitContext(ctx, batchRPC(batch)), ops)
		if err != nil {
			cerr = err
			s.reload()
		} else {
			seq = c.Seq
			if len(c.Changes) > 0 {
				s.fib.changed(seq)
			}
			for ss := range fresh {
				ss.recorded = true
			}
		}
	}
	// One response per session per batch, results in the order they came.
	ans := newAnswers(len(outs))
	var waits []fibWait
	for i, r := range outs {
		ss := r.Op.Tag.(*session)
		id := r.Op.ID
		// The op is answered: the RIB may hold its entry for long after
		// the session ended (a PRESERVE session's), and must not keep
		// the session (its stream's context) alive with it.
		r.Op.Tag = nil
		switch {
		case !r.OK:
			ans.addDetails(ss, id, spb.AFTResult_FAILED, r.Err.Error())
			ss.done(1)
		case cerr != nil:
			ans.addDetails(ss, id, spb.AFTResult_FAILED, "commit: "+cerr.Error())
			ss.done(1)
		default:
			ans.add(ss, id, spb.AFTResult_RIB_PROGRAMMED)
			if ss.fibAck {
				if waits == nil {
					waits = make([]fibWait, 0, len(outs)-i)
				}
				waits = append(waits, fibWait{sess: ss, op: r.Op})
			} else {
				ss.done(1)
			}
		}
	}
	// Answered before the waits are queued, so a FIB acknowledgement the
	// route backend's watcher resolves at once never overtakes its RIB
	// acknowledgement.
	ans.send()
	s.fib.add(waits)
	s.resolveFIB()
}
