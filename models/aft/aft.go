package aft

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/internal/maproom"
)

// Kind is the AFT an entry belongs to.
type Kind uint8

// The AFTs Kedge holds.
const (
	KindNextHop Kind = iota + 1
	KindNextHopGroup
	KindIPv4
	KindIPv6
)

func (k Kind) String() string {
	switch k {
	case KindNextHop:
		return "next-hop"
	case KindNextHopGroup:
		return "next-hop-group"
	case KindIPv4:
		return "ipv4-entry"
	case KindIPv6:
		return "ipv6-entry"
	}
	return "unknown"
}

// Meta is what an entry records about the session that last wrote it.
type Meta struct {
	// Session names the writing session (DeleteSession removes its
	// entries).
	Session string
}

// NextHop is a next-hop entry.
type NextHop struct {
	Index     uint64
	IP        netip.Addr // invalid when none
	Interface string
	// Unsupported names what the next hop asks for that Kedge cannot
	// program; the RIB accepts it (it is valid gRIBI) and the route
	// backend fails the routes that use it.
	Unsupported string
}

// Member is one next hop of a group.
type Member struct {
	Index  uint64
	Weight uint64 // 0: unset (1)
}

// NextHopGroup is a next-hop-group entry.
type NextHopGroup struct {
	ID      uint64
	Members []Member // sorted by Index, no duplicates
	Backup  uint64   // 0: none
}

// IPEntry is an IPv4 or IPv6 entry.
type IPEntry struct {
	Prefix   netip.Prefix
	NHG      uint64
	Metadata []byte
}

// Entry is one entry of any kind with its Meta.
type Entry struct {
	Kind Kind
	NH   NextHop      // KindNextHop
	NHG  NextHopGroup // KindNextHopGroup
	IP   IPEntry      // KindIPv4, KindIPv6
	Meta Meta
}

// Key identifies an entry within its kind.
type Key struct {
	Kind   Kind
	ID     uint64       // next hop index, group id
	Prefix netip.Prefix // IP entries
}

func (k Key) String() string {
	if k.Kind == KindIPv4 || k.Kind == KindIPv6 {
		return k.Kind.String() + " " + k.Prefix.String()
	}
	return fmt.Sprintf("%s %d", k.Kind, k.ID)
}

// Key returns the entry's key.
func (e *Entry) Key() Key {
	switch e.Kind {
	case KindNextHop:
		return Key{Kind: e.Kind, ID: e.NH.Index}
	case KindNextHopGroup:
		return Key{Kind: e.Kind, ID: e.NHG.ID}
	}
	return Key{Kind: e.Kind, Prefix: e.IP.Prefix}
}

// Verb is what an operation does.
type Verb uint8

// Operations: Add is an add or an implicit replace; Replace fails when
// the entry does not exist.
const (
	Add Verb = iota + 1
	Replace
	Delete
)

func (v Verb) String() string {
	switch v {
	case Add:
		return "add"
	case Replace:
		return "replace"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Op is one AFT operation. For a Delete only the Entry's key matters.
type Op struct {
	ID    uint64
	Verb  Verb
	Entry Entry
	// Tag is the caller's, returned with the op's result (the gRIBI
	// service keeps the session that sent it there).
	Tag any
}

// Result is the outcome of one operation.
type Result struct {
	Op *Op
	// OK: the RIB holds the operation's effect. Otherwise Err says why it
	// failed (a referenced entry that cannot be deleted has an Err too).
	OK  bool
	Err error
	// Existed: the entry was in the RIB before the operation (an add
	// that replaced it, a delete that removed it).
	Existed bool
}

// Errors an operation fails with (wrapped with the entry's details).
var (
	// ErrInvalid: the entry is malformed (zero index, empty group, bad
	// prefix).
	ErrInvalid = errors.New("invalid entry")
	// ErrMissing: an explicit REPLACE of an entry that does not exist.
	ErrMissing = errors.New("entry does not exist")
	// ErrReferenced: a DELETE of an entry another entry references.
	ErrReferenced = errors.New("entry is referenced")
	// ErrUnresolved: with forward references disallowed, an entry whose
	// reference does not resolve.
	ErrUnresolved = errors.New("unresolved reference")
)

// RIB is the AFT of one network instance.
type RIB struct {
	nhs  map[uint64]*Entry
	nhgs map[uint64]*Entry
	ips  map[netip.Prefix]*Entry
	// refs counts the references to each next hop (from groups) and
	// group (from IP entries and backups).
	nhRefs, nhgRefs map[uint64]int
	// waiting holds the operations waiting for an entry they reference,
	// by that entry; pending says which operation waits under each ID
	// (an ID waits once: a later operation with the ID replaces it).
	waiting map[Key][]*Op
	pending map[uint64]*Op
	// ipRoom is how many IP entries ips was made for or has held,
	// whichever is more: a map keeps its room when entries leave it (see
	// Reserve).
	ipRoom maproom.Room
	// NoForwardReferences fails an operation whose reference does not
	// resolve instead of keeping it until it does.
	NoForwardReferences bool
}

// New returns an empty RIB.
func New() *RIB {
	return &RIB{nhs: map[uint64]*Entry{}, nhgs: map[uint64]*Entry{}, ips: map[netip.Prefix]*Entry{},
		nhRefs: map[uint64]int{}, nhgRefs: map[uint64]int{}, waiting: map[Key][]*Op{}, pending: map[uint64]*Op{}}
}

// Len is the number of entries the RIB holds.
func (r *RIB) Len() int { return len(r.nhs) + len(r.nhgs) + len(r.ips) }

// Pending is the number of operations waiting for a reference.
func (r *RIB) Pending() int { return len(r.pending) }

// Get returns the entry with key k.
func (r *RIB) Get(k Key) (*Entry, bool) {
	var e *Entry
	switch k.Kind {
	case KindNextHop:
		e = r.nhs[k.ID]
	case KindNextHopGroup:
		e = r.nhgs[k.ID]
	case KindIPv4, KindIPv6:
		e = r.ips[k.Prefix]
	}
	return e, e != nil
}

// Apply performs op and returns its result, followed by those of the
// waiting operations it made possible (each once, in the order they
// completed). An operation that waits for a reference has no result
// yet. The RIB keeps op, and holds the entry it adds as op.Entry itself
// (not a copy): the caller must not change op afterwards (but its Tag,
// which the RIB does not read), and should allocate each op on its own,
// since an entry keeps its op's allocation.
func (r *RIB) Apply(op *Op) []Result { return r.AppendApply(nil, op) }

// AppendApply is Apply appending the results to out: a batch's results
// in one slice rather than one slice each (a bulk load applies 100,000
// operations).
func (r *RIB) AppendApply(out []Result, op *Op) []Result {
	if op.Verb == Delete {
		return append(out, r.delete(op))
	}
	r.add(op, &out)
	return out
}

// Reserve makes room for n more IP entries at once when that at least
// doubles them (a bulk load's batch) and the map never held as many;
// grown an entry at a time, the map
// allocated about twice its final size on the way and rehashed every
// entry at each step.
func (r *RIB) Reserve(n int) { r.ips = maproom.Reserve(r.ips, &r.ipRoom, n) }

func (r *RIB) add(op *Op, out *[]Result) {
	e := &op.Entry
	if err := check(e); err != nil {
		*out = append(*out, Result{Op: op, Err: err})
		r.unwait(op.ID)
		return
	}
	k := e.Key()
	old, exists := r.Get(k)
	if op.Verb == Replace && !exists {
		*out = append(*out, Result{Op: op, Err: fmt.Errorf("replace %s: %w", k, ErrMissing)})
		r.unwait(op.ID)
		return
	}
	if missing, ok := r.unresolved(e); ok {
		if r.NoForwardReferences {
			*out = append(*out, Result{Op: op, Err: fmt.Errorf("add %s: %w: %s", k, ErrUnresolved, missing)})
			return
		}
		r.wait(op, missing)
		return
	}
	r.unwait(op.ID)
	// Count the new references before releasing the old ones, so an entry
	// replaced by itself never drops to zero on the way.
	r.ref(e, +1)
	if exists {
		r.ref(old, -1)
	}
	// The op's own entry is held, not a copy (Apply): copying it was a
	// second allocation of 192 bytes per entry, 18 MB of a 100,000-entry
	// bulk load.
	switch k.Kind {
	case KindNextHop:
		r.nhs[k.ID] = e
	case KindNextHopGroup:
		r.nhgs[k.ID] = e
	default:
		r.ips[k.Prefix] = e
		r.ipRoom.Held(len(r.ips))
	}
	*out = append(*out, Result{Op: op, OK: true, Existed: exists})
	// Operations waiting for this entry may resolve now; each either
	// completes, fails, or waits again for its next missing reference.
	if ws := r.waiting[k]; len(ws) > 0 {
		delete(r.waiting, k)
		for _, w := range ws {
			if r.pending[w.ID] == w {
				delete(r.pending, w.ID)
				r.add(w, out)
			}
		}
	}
}

// wait parks op until the entry it references exists. A newer operation
// with the same ID replaces an older one that waits.
func (r *RIB) wait(op *Op, on Key) {
	r.pending[op.ID] = op
	r.waiting[on] = append(r.waiting[on], op)
}

// unwait drops a waiting operation with op's ID (a stale entry in
// waiting is skipped when it is reached).
func (r *RIB) unwait(id uint64) { delete(r.pending, id) }

// unresolved returns the first entry e references that the RIB lacks.
func (r *RIB) unresolved(e *Entry) (Key, bool) {
	switch e.Kind {
	case KindNextHopGroup:
		for _, m := range e.NHG.Members {
			if r.nhs[m.Index] == nil {
				return Key{Kind: KindNextHop, ID: m.Index}, true
			}
		}
	case KindIPv4, KindIPv6:
		if r.nhgs[e.IP.NHG] == nil {
			return Key{Kind: KindNextHopGroup, ID: e.IP.NHG}, true
		}
	}
	return Key{}, false
}

// ref adds d to the reference counts of what e references.
func (r *RIB) ref(e *Entry, d int) {
	bump := func(m map[uint64]int, id uint64) {
		if n := m[id] + d; n > 0 {
			m[id] = n
		} else {
			delete(m, id)
		}
	}
	switch e.Kind {
	case KindNextHopGroup:
		for _, m := range e.NHG.Members {
			bump(r.nhRefs, m.Index)
		}
	case KindIPv4, KindIPv6:
		bump(r.nhgRefs, e.IP.NHG)
	}
}

func (r *RIB) delete(op *Op) Result {
	e := &op.Entry
	k := e.Key()
	switch k.Kind {
	case KindNextHop, KindNextHopGroup:
		if k.ID == 0 {
			return Result{Op: op, Err: fmt.Errorf("delete %s: %w: zero", k, ErrInvalid)}
		}
	case KindIPv4, KindIPv6:
		if !k.Prefix.IsValid() {
			return Result{Op: op, Err: fmt.Errorf("delete %s: %w: no prefix", k.Kind, ErrInvalid)}
		}
	default:
		return Result{Op: op, Err: fmt.Errorf("delete: %w: unknown kind", ErrInvalid)}
	}
	old, exists := r.Get(k)
	if !exists {
		// Deleting what is not there succeeds: the RIB already lacks it.
		return Result{Op: op, OK: true}
	}
	if n := r.refsTo(k); n > 0 {
		return Result{Op: op, Err: fmt.Errorf("delete %s: %w by %d entries", k, ErrReferenced, n)}
	}
	r.ref(old, -1)
	r.remove(k)
	return Result{Op: op, OK: true, Existed: true}
}

func (r *RIB) refsTo(k Key) int {
	switch k.Kind {
	case KindNextHop:
		return r.nhRefs[k.ID]
	case KindNextHopGroup:
		return r.nhgRefs[k.ID]
	}
	return 0
}

func (r *RIB) remove(k Key) {
	switch k.Kind {
	case KindNextHop:
		delete(r.nhs, k.ID)
	case KindNextHopGroup:
		delete(r.nhgs, k.ID)
	default:
		delete(r.ips, k.Prefix)
	}
}

// check validates what can be checked of an entry on its own.
func check(e *Entry) error {
	k := e.Key()
	switch e.Kind {
	case KindNextHop:
		if e.NH.Index == 0 {
			return fmt.Errorf("add %s: %w: index zero", k.Kind, ErrInvalid)
		}
	case KindNextHopGroup:
		switch {
		case e.NHG.ID == 0:
			return fmt.Errorf("add %s: %w: id zero", k.Kind, ErrInvalid)
		case len(e.NHG.Members) == 0:
			return fmt.Errorf("add %s: %w: empty next-hop-group", k, ErrInvalid)
		}
		for i, m := range e.NHG.Members {
			if m.Index == 0 {
				return fmt.Errorf("add %s: %w: next hop index zero", k, ErrInvalid)
			}
			if i > 0 && e.NHG.Members[i-1].Index >= m.Index {
				return fmt.Errorf("add %s: %w: next hops not sorted or repeated", k, ErrInvalid)
			}
		}
	case KindIPv4, KindIPv6:
		p := e.IP.Prefix
		switch {
		case !p.IsValid():
			return fmt.Errorf("add %s: %w: no prefix", k.Kind, ErrInvalid)
		case p.Addr().Is4() != (e.Kind == KindIPv4) || p.Addr().Is4In6():
			return fmt.Errorf("add %s: %w: wrong address family", k, ErrInvalid)
		case p.Masked() != p:
			return fmt.Errorf("add %s: %w: host bits set", k, ErrInvalid)
		case e.IP.NHG == 0:
			return fmt.Errorf("add %s: %w: next-hop-group zero", k, ErrInvalid)
		}
	default:
		return fmt.Errorf("add: %w: unknown kind", ErrInvalid)
	}
	return nil
}

// Flush removes every entry and every waiting operation, and returns the
// keys of the entries removed.
func (r *RIB) Flush() []Key {
	keys := r.Keys()
	clear(r.nhs)
	clear(r.nhgs)
	clear(r.ips)
	clear(r.nhRefs)
	clear(r.nhgRefs)
	clear(r.waiting)
	clear(r.pending)
	return keys
}

// DeleteSession removes the entries session last wrote, IP entries
// first, then groups, then next hops, keeping any that another session's
// entry still references, and drops the session's waiting operations. It
// returns the keys removed, in that order.
func (r *RIB) DeleteSession(session string) []Key {
	var out []Key
	for _, k := range r.Keys() {
		if e, _ := r.Get(k); e.Meta.Session == session && r.refsTo(k) == 0 {
			r.ref(e, -1)
			r.remove(k)
			out = append(out, k)
		}
	}
	for id, w := range r.pending {
		if w.Entry.Meta.Session == session {
			delete(r.pending, id)
		}
	}
	return out
}

// Keys returns every key: IP entries (IPv4 first, by prefix), then
// groups, then next hops (by id), the order in which they can be
// removed.
func (r *RIB) Keys() []Key {
	out := make([]Key, 0, r.Len())
	ips := slices.SortedFunc(maps.Keys(r.ips), func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	for _, p := range ips {
		out = append(out, r.ips[p].Key())
	}
	for _, id := range slices.Sorted(maps.Keys(r.nhgs)) {
		out = append(out, Key{Kind: KindNextHopGroup, ID: id})
	}
	for _, id := range slices.Sorted(maps.Keys(r.nhs)) {
		out = append(out, Key{Kind: KindNextHop, ID: id})
	}
	return out
}

// Entries calls fn with every entry of kind, in key order, until fn
// returns false.
func (r *RIB) Entries(kind Kind, fn func(*Entry) bool) {
	switch kind {
	case KindNextHop:
		for _, id := range slices.Sorted(maps.Keys(r.nhs)) {
			if !fn(r.nhs[id]) {
				return
			}
		}
	case KindNextHopGroup:
		for _, id := range slices.Sorted(maps.Keys(r.nhgs)) {
			if !fn(r.nhgs[id]) {
				return
			}
		}
	case KindIPv4, KindIPv6:
		ps := slices.SortedFunc(maps.Keys(r.ips), func(a, b netip.Prefix) int {
			return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
		})
		for _, p := range ps {
			if e := r.ips[p]; e.Kind == kind && !fn(e) {
				return
			}
		}
	}
}
