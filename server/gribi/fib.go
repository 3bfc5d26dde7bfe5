package gribi

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// programmedPath is the schema path of /kedge/aft/state/programmed-sequence.
var programmedPath = aftPath.State().ProgrammedSequence().SchemaPath()

// fibWait is an operation of a FIB-ACK session whose FIB outcome is owed.
// It points at the operation (its id, verb and entry key) rather than
// copying them: 16 bytes a wait, not 72, of the 100,000 a bulk load owes
// (an op is not changed once applied, and an added entry's op lives on
// in the RIB anyway).
type fibWait struct {
	sess *session
	op   *aft.Op
}

// fibBatch is the waits of one batch of operations: their outcome is known
// once the route backend has applied a tree at least as new as seq, the
// last commit that changed the AFT when the batch was applied (an
// operation that changed nothing waits for the change it repeated).
type fibBatch struct {
	seq   uint64
	waits []fibWait
}

// fibWaits holds the owed FIB outcomes in the order they were accepted
// (so by seq), a batch's together: a bulk load's 100,000 waits are then
// one slice per batch, each allocated once at its size, where one queue
// grown by append was reallocated (by a quarter each time) again and again.
type fibWaits struct {
	mu         sync.Mutex
	programmed uint64 // the last programmed-sequence the route backend wrote
	lastChange uint64 // the last commit that changed /kedge/aft
	batches    []fibBatch
}

func newFIBWaits() *fibWaits { return &fibWaits{} }

// add queues the waits of one batch, which the queue owns from then on.
func (f *fibWaits) add(ws []fibWait) {
	if len(ws) == 0 {
		return
	}
	f.mu.Lock()
	f.batches = append(f.batches, fibBatch{seq: f.lastChange, waits: ws})
	f.mu.Unlock()
}

func (f *fibWaits) changed(seq uint64) {
	f.mu.Lock()
	f.lastChange = max(f.lastChange, seq)
	f.mu.Unlock()
}

func (f *fibWaits) observe(p uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p <= f.programmed {
		return false
	}
	f.programmed = p
	return len(f.batches) > 0 && f.batches[0].seq <= p
}

// due removes and returns the batches the route backend has caught up
// with, in order.
func (f *fibWaits) due() []fibBatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.batches) && f.batches[n].seq <= f.programmed {
		n++
	}
	if n == 0 {
		return nil
	}
	// Handed out in place: add and forget write only from the new start
	// on, and the array is dropped when append outgrows it.
	out := f.batches[:n:n]
	f.batches = f.batches[n:]
	return out
}

// forget drops the waits of a session that ended.
func (f *fibWaits) forget(ss *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.batches[:0]
	for _, b := range f.batches {
		ws := b.waits[:0]
		for _, w := range b.waits {
			if w.sess != ss {
				ws = append(ws, w)
			}
		}
		clear(b.waits[len(ws):])
		if len(ws) > 0 {
			kept = append(kept, fibBatch{seq: b.seq, waits: ws})
		}
	}
	clear(f.batches[len(kept):])
	f.batches = kept
}

// watchFIB follows the change feed for the route backend's progress
// (programmed-sequence) and answers the FIB outcomes it settles.
func (s *Service) watchFIB(ctx context.Context, w *store.Watcher) {
	for {
		c, err := w.Next(ctx)
		if errors.Is(err, store.ErrResync) {
			if w, err = s.cfg.Store.ReadWatch(func(t *tree.Tree, _ uint64) error {
				s.fib.observe(programmedSeq(t))
				return nil
			}); err != nil {
				return
			}
			s.resolveFIB()
			continue
		}
		if err != nil {
			return
		}
		if !c.State {
			continue
		}
		for _, ch := range c.Changes {
			if ch.Node.Path == programmedPath && ch.Op != tree.OpDelete {
				if s.fib.observe(ch.Val.UintVal()) {
					s.resolveFIB()
				}
			}
		}
	}
}

// statusInstalled is the state of an entry the backend programmed.
const statusInstalled = kedgepath.AftStatusInstalled

// resolveFIB answers every wait the route backend has caught up with,
// from the entries' state in the tree.
func (s *Service) resolveFIB() {
	due := s.fib.due()
	if len(due) == 0 {
		return
	}
	n := 0
	for _, b := range due {
		n += len(b.waits)
	}
	ans := newAnswers(n)
	var pt prefixText
	s.cfg.Store.Read(func(t *tree.Tree) error {
		for _, b := range due {
			for _, w := range b.waits {
				// The FIB holds the RIB as of this operation or a later one: an
				// entry a later operation removed (or added back) was
				// superseded, and what the later operation did is what its own
				// acknowledgement reports.
				st, reason, exists := entryState(t, w.op.Entry.Key(), &pt)
				if w.op.Verb != aft.Delete && exists && st != statusInstalled {
					msg := string(st)
					if reason != "" {
						msg += ": " + reason
					}
					ans.addDetails(w.sess, w.op.ID, spb.AFTResult_FIB_FAILED, msg)
					continue
				}
				ans.add(w.sess, w.op.ID, spb.AFTResult_FIB_PROGRAMMED)
			}
		}
		return nil
	})
	ans.send()
	for _, ss := range ans.order {
		ss.done(ans.resp[ss].results)
	}
}

// statusOf is an entry's programming status ("" when it has none).
func statusOf(t *tree.Tree, k aft.Key) kedgepath.AftStatus {
	st, _, _ := entryState(t, k, nil)
	return st
}

// entryState reads an entry's status and reason, and whether the entry
// exists. An IP entry's key is written by pt (nil: its own string): the
// FIB acknowledgements of a bulk load read 100,000 entries, and a string
// each was a tenth of what reading one cost (BenchmarkFIBRead).
func entryState(t *tree.Tree, k aft.Key, pt *prefixText) (kedgepath.AftStatus, string, bool) {
	a := kedgetree.Of(t).Kedge().Aft()
	var pb [64]byte
	pfx := func() string {
		if pt == nil {
			// One allocation (Prefix.String makes two).
			return string(k.Prefix.AppendTo(pb[:0]))
		}
		return pt.text(k.Prefix)
	}
	var st kedgepath.AftStatus
	var reason string
	switch k.Kind {
	case aft.KindNextHop:
		e, ok := a.NextHops().NextHop().Get(k.ID)
		if !ok {
			return "", "", false
		}
		st, _ = e.State().Status()
		reason, _ = e.State().Reason()
	case aft.KindNextHopGroup:
		e, ok := a.NextHopGroups().NextHopGroup().Get(k.ID)
		if !ok {
			return "", "", false
		}
		st, _ = e.State().Status()
		reason, _ = e.State().Reason()
	case aft.KindIPv4:
		e, ok := a.Ipv4Entries().Ipv4Entry().Get(pfx())
		if !ok {
			return "", "", false
		}
		st, _ = e.State().Status()
		reason, _ = e.State().Reason()
	case aft.KindIPv6:
		e, ok := a.Ipv6Entries().Ipv6Entry().Get(pfx())
		if !ok {
			return "", "", false
		}
		st, _ = e.State().Status()
		reason, _ = e.State().Reason()
	}
	return st, reason, true
}

// keyOfProto is the RIB key of a Get entry.
func keyOfProto(e *spb.AFTEntry) aft.Key {
	switch t := e.GetEntry().(type) {
	case *spb.AFTEntry_NextHop:
		return aft.Key{Kind: aft.KindNextHop, ID: t.NextHop.GetIndex()}
	case *spb.AFTEntry_NextHopGroup:
		return aft.Key{Kind: aft.KindNextHopGroup, ID: t.NextHopGroup.GetId()}
	case *spb.AFTEntry_Ipv4:
		p, _ := netip.ParsePrefix(t.Ipv4.GetPrefix())
		return aft.Key{Kind: aft.KindIPv4, Prefix: p}
	case *spb.AFTEntry_Ipv6:
		p, _ := netip.ParsePrefix(t.Ipv6.GetPrefix())
		return aft.Key{Kind: aft.KindIPv6, Prefix: p}
	}
	return aft.Key{}
}
