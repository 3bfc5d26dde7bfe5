package tree

import (
	"strings"
	"sync/atomic"
	"unsafe"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Inst is one version of a container or list entry instance. A committed
// Inst never changes: a transaction that writes below it copies it (and
// every instance on the way down from the root) into the next version,
// sharing everything it did not write. Readers of any version therefore
// need no lock, and a *Inst keeps meaning the same values for as long as
// anyone holds it.
//
// An Inst points down only. What it needs to render its path (its schema
// node and the keys of the list entries above it) is its identity, an
// Ident, which stays the same in every version; a pointer up to a
// versioned parent would keep every older version of the tree alive.
type Inst struct {
	s  *Node
	id *ident // the list entry this instance is or is inside; nil above every entry
	// vals holds the leaves by slot up to the last one ever set (val
	// reads the rest as unset): a state container that mirrors eight
	// config leaves but is written only a status takes one slot, not
	// ten, which at 100,000 routes is 14 MB (the schema puts
	// operational leaves first for this; see assignSlots).
	vals []Value
	// sub0 and list0 point at the first of the container children and
	// of the lists, whose number the schema node gives (subs and lists
	// make the slices): two pointers instead of two slice headers make
	// an Inst 64 bytes, not 96, which at 100,000 routes, three
	// instances each, is 9.6 MB.
	sub0  **Inst
	list0 *entries
	// mark is the id of the transaction that made this version: that
	// transaction writes it in place, any other copies it first.
	mark uint64
}

// ident is the identity of one list entry across versions: the entry it
// sits in and its key values. vals is the entry's first version's leaf
// array, of which only the key slots, which never change, are read.
type ident struct {
	up   *ident
	vals []Value
	// born and cut are the ids of the transactions that created the
	// entry and took it out of its list; only the writer reads them.
	born, cut uint64
	// listed is the number of the last analysis (Tree.analyses) that
	// listed the entry for its mandatory-leaf check: a set of 100,000
	// entries that a map cost 4.5 MB and a hash a route to keep. The
	// field fits the ident's size class (56 bytes in 64).
	listed uint64
	// dead is set when a committed transaction removes the entry.
	dead atomic.Bool
}

// Schema returns the instance's schema node (a container or a list).
func (in *Inst) Schema() *Node { return in.s }

// Ident returns the instance's identity, which every version of it
// shares.
func (in *Inst) Ident() Ident { return Ident{id: in.id, s: in.s} }

// Stamp identifies the transaction that made this version of the
// instance: one that wrote its own leaves, or below it. A committed *Inst
// never changes, so while a consumer sees the same *Inst (with the same
// stamp) its values are unchanged, and a consumer may cache what it
// derived from them. A write makes a new *Inst with a new stamp; so may,
// within a transaction that changes something else, a write that stored
// equal values, which only costs that consumer a recomputation.
func (in *Inst) Stamp() uint64 { return in.mark }

// Keys returns a list entry's key values in key order.
func (in *Inst) Keys() []Value {
	keys := make([]Value, len(in.s.Keys))
	for i, k := range in.s.Keys {
		keys[i] = in.val(k.slot)
	}
	return keys
}

// key returns the entry's i-th key value.
func (in *Inst) key(i int) Value { return in.val(in.s.Keys[i].slot) }

// keyStr returns the entry's key string in its list.
func (in *Inst) keyStr() string {
	if len(in.s.Keys) == 1 {
		return in.key(0).String()
	}
	return keyString(in.Keys())
}

// Leaf returns the value of the leaf or leaf-list child n (zero if unset).
func (in *Inst) Leaf(n *Node) Value { return in.val(n.slot) }

// Get returns the value of the named leaf child (zero if unset or unknown).
func (in *Inst) Get(name string) Value {
	n := in.s.byName[name]
	if n == nil || (n.Kind != KindLeaf && n.Kind != KindLeafList) {
		return Value{}
	}
	return in.val(n.slot)
}

// Sub returns the named container child, or nil if it holds nothing yet.
func (in *Inst) Sub(name string) *Inst {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindContainer {
		return nil
	}
	return in.subs()[n.slot]
}

// Removed reports whether a committed transaction has deleted this list
// entry from its list (a change feed consumer may hold one). A reader of
// an older version may still find the entry there.
func (in *Inst) Removed() bool {
	return in.s.Kind == KindList && in.Ident().Removed()
}

// SubAt is Sub by schema node, for loops over many entries: n must be a
// container child of the instance's schema node (from Node.Child).
func (in *Inst) SubAt(n *Node) *Inst { return in.subs()[n.slot] }

// Entries calls fn for each entry of the named list child, in no
// particular order, until fn returns false.
func (in *Inst) Entries(name string, fn func(*Inst) bool) {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindList {
		return
	}
	in.lists()[n.slot].each(func(_ string, e *Inst) bool { return fn(e) })
}

// Len returns the number of entries in the named list child.
func (in *Inst) Len(name string) int {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindList {
		return 0
	}
	return in.lists()[n.slot].n
}

// Entry returns the entry of list child n (from Node.Child) with the given
// key values in key order, or nil.
func (in *Inst) Entry(n *Node, keys ...Value) *Inst {
	if n.Parent != in.s || n.Kind != KindList || len(keys) != len(n.Keys) {
		return nil
	}
	return in.lists()[n.slot].get(keyString(keys))
}

// subs returns the instance's container children by slot (nil for
// those it does not hold); writes through it change the instance.
func (in *Inst) subs() []*Inst {
	if in.sub0 == nil {
		return nil
	}
	return unsafe.Slice(in.sub0, in.s.nsubs)
}

// lists returns the instance's lists by slot; writes through it change
// the instance.
func (in *Inst) lists() []entries {
	if in.list0 == nil {
		return nil
	}
	return unsafe.Slice(in.list0, in.s.nlists)
}

// cloneArray copies the n elements p points at into a new array and
// returns its first (nil for nil).
func cloneArray[T any](p *T, n int) *T {
	if p == nil {
		return nil
	}
	c := make([]T, n)
	copy(c, unsafe.Slice(p, n))
	return &c[0]
}

// val returns the value of the leaf in slot i (zero if unset).
func (in *Inst) val(i int) Value {
	if i < len(in.vals) {
		return in.vals[i]
	}
	return Value{}
}

// newInst makes an empty instance of s. Its vals start with room for
// the list keys only, which an entry's ident shares (see ident); setVal
// grows them. An instance with no keys, containers or lists and at most
// room leaves (a route's config container, for a config writer) is
// allocated with a slot for each, which setVal fills in place: the array
// never grows, so none is left inside the allocation unused (an instance
// of more leaves keeps growVals' arrays, which a growth frees).
func newInst(s *Node, id *ident, mark uint64, room int) *Inst {
	var in *Inst
	if r := s.nvals; r > 0 && r <= room && s.keySlots == 0 && s.nsubs == 0 && s.nlists == 0 && r <= len(valsMakers) {
		in = valsMakers[r-1]()
	} else {
		in = packedInst(s)
	}
	in.s, in.id, in.mark = s, id, mark
	if n := s.keySlots; n > 0 {
		in.vals = make([]Value, n)
	}
	addArrays(in)
	return in
}

// withVals is an instance allocated with its leaf array V.
type withVals[V any] struct {
	in   Inst
	vals V
}

// valsMakers[i] allocates an instance with room for i+1 leaves.
var valsMakers = [4]func() *Inst{valsOf[[1]Value], valsOf[[2]Value], valsOf[[3]Value], valsOf[[4]Value]}

func valsOf[V any]() *Inst {
	b := new(withVals[V])
	var v V
	b.in.vals = unsafe.Slice((*Value)(unsafe.Pointer(&b.vals)), unsafe.Sizeof(v)/unsafe.Sizeof(Value{}))[:0]
	return &b.in
}

// newEntry makes a new entry of list s below the entry up names (nil
// for none), with its identity: the ident and the entry's first leaf
// array (its key slots, which the ident reads and keeps) are one
// allocation, one fewer a route in a bulk Set of 100,000.
func newEntry(s *Node, up *ident, mark uint64) *Inst {
	id := newIdent(s.keySlots)
	id.up, id.born = up, mark
	in := packedInst(s)
	in.s, in.id, in.mark, in.vals = s, id, mark, id.vals
	addArrays(in)
	return in
}

// identWith is an ident allocated with its key array V.
type identWith[V any] struct {
	id   ident
	vals V
}

// newIdent returns an ident whose vals are n slots, exactly, allocated
// with it: setVal grows an entry's leaf array past its key slots into a
// new array, never into the ident's.
func newIdent(n int) *ident {
	switch n {
	case 0:
		return &ident{}
	case 1:
		return identOf[[1]Value](n)
	case 2:
		return identOf[[2]Value](n)
	case 3:
		return identOf[[3]Value](n)
	case 4:
		return identOf[[4]Value](n)
	}
	return &ident{vals: make([]Value, n)}
}

func identOf[V any](n int) *ident {
	b := new(identWith[V])
	b.id.vals = unsafe.Slice((*Value)(unsafe.Pointer(&b.vals)), n)
	return &b.id
}

// addArrays gives a new instance the container and list arrays that
// packedInst did not.
func addArrays(in *Inst) {
	s := in.s
	if in.sub0 == nil && s.nsubs > 0 {
		in.sub0 = &make([]*Inst, s.nsubs)[0]
	}
	if in.list0 == nil && s.nlists > 0 {
		in.list0 = &make([]entries, s.nlists)[0]
	}
}

// withArrays is an instance allocated together with its container and
// list arrays: a new route is three allocations fewer (its entry's
// arrays, its config's) in a bulk Set of 100,000. A copy (clone) gets
// arrays of its own, as before.
type withArrays[S, L any] struct {
	// The instance last: a zero-length array last would be padded.
	subs  S
	lists L
	in    Inst
}

// packedInst returns an instance of s whose sub0 and list0 point into
// the same allocation, sized exactly, for the small numbers of them most
// nodes have (a route: two containers; its config: none); for others, a
// bare instance.
func packedInst(s *Node) *Inst {
	if s.nsubs < len(packers) && s.nlists < len(packers[0]) {
		if p := packers[s.nsubs][s.nlists]; p != nil {
			return p(s)
		}
	}
	return &Inst{}
}

// packers[containers][lists] allocates an instance with its arrays.
var packers = [5][3]func(*Node) *Inst{
	{nil, packed[[0]*Inst, [1]entries], packed[[0]*Inst, [2]entries]},
	{packed[[1]*Inst, [0]entries], packed[[1]*Inst, [1]entries], packed[[1]*Inst, [2]entries]},
	{packed[[2]*Inst, [0]entries], packed[[2]*Inst, [1]entries], packed[[2]*Inst, [2]entries]},
	{packed[[3]*Inst, [0]entries], packed[[3]*Inst, [1]entries], packed[[3]*Inst, [2]entries]},
	{packed[[4]*Inst, [0]entries], packed[[4]*Inst, [1]entries], packed[[4]*Inst, [2]entries]},
}

func packed[S, L any](s *Node) *Inst {
	b := new(withArrays[S, L])
	if s.nsubs > 0 {
		b.in.sub0 = (**Inst)(unsafe.Pointer(&b.subs))
	}
	if s.nlists > 0 {
		b.in.list0 = (*entries)(unsafe.Pointer(&b.lists))
	}
	return &b.in
}

// keyString is the key of a list entry in its list: its key values' text
// joined by NUL, which no key value contains once validated against its
// type.
//
// Several keys are rendered into one buffer and copied out once (a route's
// prefix and table: one allocation, not the table's text, the parts and
// the joined string).
func keyString(keys []Value) string {
	if len(keys) == 1 {
		return keys[0].String()
	}
	var buf [64]byte
	b := buf[:0]
	for i, k := range keys {
		if i > 0 {
			b = append(b, 0)
		}
		b = k.appendText(b)
	}
	return string(b)
}

// Elems returns the gNMI path elements from the root to in.
func (in *Inst) Elems() []*gpb.PathElem { return in.Ident().Elems() }

// PathString renders in's data path in gNMI string form, e.g.
// /kedge/routes/route[prefix=10.0.0.0/8][table=254].
func (in *Inst) PathString() string { return in.Ident().PathString() }

// Element renders in's own path element ("/name" or "/name[k=v]…"), so
// that callers can build paths from a parent's rendered path.
func (in *Inst) Element() string { return in.Ident().Element() }

func writeEscapedKey(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ']' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
}

// isEmpty reports whether in holds no leaf values and no entries below it,
// considering only nodes that keep passes.
func (in *Inst) isEmpty(keep func(*Node) bool) bool {
	for _, ch := range in.s.Children {
		if keep != nil && !keep(ch) && ch.Kind != KindContainer && ch.Kind != KindList {
			continue
		}
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if in.val(ch.slot).IsSet() {
				return false
			}
		case KindContainer:
			if sub := in.subs()[ch.slot]; sub != nil && !sub.isEmpty(keep) {
				return false
			}
		case KindList:
			if !in.lists()[ch.slot].each(func(_ string, e *Inst) bool { return e.isEmpty(keep) }) {
				return false
			}
		}
	}
	return true
}
