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

// fibWait is an operation of a FIB-ACK session whose FIB outcome is owed:
// it is known once the route backend has applied a tree at least as new
// as seq, the last commit that changed the AFT when the operation was
// accepted (an operation that changed nothing waits for the change it
// repeated).
type fibWait struct {
	sess *session
	id   uint64
	key  aft.Key
	del  bool
	seq  uint64
}

// fibWaits holds the owed FIB outcomes in the order they were accepted
// (so by seq).
type fibWaits struct {
	mu         sync.Mutex
	programmed uint64 // the last programmed-sequence the route backend wrote
	lastChange uint64 // the last commit that changed /kedge/aft
	waits      []fibWait
}

func newFIBWaits() *fibWaits { return &fibWaits{} }

func (f *fibWaits) add(w fibWait) {
	f.mu.Lock()
	w.seq = f.lastChange
	f.waits = append(f.waits, w)
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
	return len(f.waits) > 0 && f.waits[0].seq <= p
}

// due removes and returns the waits the route backend has caught up with.
func (f *fibWaits) due() []fibWait {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.waits) && f.waits[n].seq <= f.programmed {
		n++
	}
	if n == 0 {
		return nil
	}
	// The waits are handed out in place and the queue moves past them:
	// add and forget write only from the new start on, and the array is
	// dropped when append outgrows it. Copying both parts each time was
	// a bulk load's 100,000 waits copied again at every acknowledgement.
	out := f.waits[:n:n]
	f.waits = f.waits[n:]
	return out
}

// forget drops the waits of a session that ended.
func (f *fibWaits) forget(ss *session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.waits[:0]
	for _, w := range f.waits {
		if w.sess != ss {
			kept = append(kept, w)
		}
	}
	clear(f.waits[len(kept):])
	f.waits = kept
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
	resp := map[*session]*spb.ModifyResponse{}
	var order []*session
	s.cfg.Store.Read(func(t *tree.Tree) error {
		for _, w := range due {
			r := &spb.AFTResult{Id: w.id, Status: spb.AFTResult_FIB_PROGRAMMED}
			// The FIB holds the RIB as of this operation or a later one: an
			// entry a later operation removed (or added back) was
			// superseded, and what the later operation did is what its own
			// acknowledgement reports.
			st, reason, exists := entryState(t, w.key)
			if !w.del && exists && st != statusInstalled {
				r.Status = spb.AFTResult_FIB_FAILED
				msg := string(st)
				if reason != "" {
					msg += ": " + reason
				}
				r.ErrorDetails = &spb.AFTErrorDetails{ErrorMessage: msg}
			}
			m := resp[w.sess]
			if m == nil {
				m = &spb.ModifyResponse{}
				resp[w.sess] = m
				order = append(order, w.sess)
			}
			m.Result = append(m.Result, r)
		}
		return nil
	})
	for _, ss := range order {
		ss.send(resp[ss])
		ss.done(len(resp[ss].Result))
	}
}

// statusOf is an entry's programming status ("" when it has none).
func statusOf(t *tree.Tree, k aft.Key) kedgepath.AftStatus {
	st, _, _ := entryState(t, k)
	return st
}

// entryState reads an entry's status and reason, and whether the entry
// exists.
func entryState(t *tree.Tree, k aft.Key) (kedgepath.AftStatus, string, bool) {
	a := kedgetree.Of(t).Kedge().Aft()
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
		e, ok := a.Ipv4Entries().Ipv4Entry().Get(k.Prefix.String())
		if !ok {
			return "", "", false
		}
		st, _ = e.State().Status()
		reason, _ = e.State().Reason()
	case aft.KindIPv6:
		e, ok := a.Ipv6Entries().Ipv6Entry().Get(k.Prefix.String())
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
