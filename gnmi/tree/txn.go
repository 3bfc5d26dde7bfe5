package tree

import (
	"errors"
	"fmt"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Op says whether a change set or removed a leaf.
type Op uint8

// Change operations.
const (
	OpUpdate Op = iota + 1
	OpDelete
)

// Change is one net per-leaf change of a transaction: the identity of
// the leaf's instance (which renders its path), the leaf's schema node,
// the new value (zero for deletes) and the old one (zero where the leaf
// was absent), for consumers that record both (the notary). A Change
// holds no version's instances, only the two values, so the change feed,
// which keeps the last million of them, keeps no older version of the
// tree alive; read other values of a version from the tree.
type Change struct {
	Op   Op
	In   Ident
	Node *Node
	Val  Value
	Old  Value
}

// Path renders the changed leaf's path in gNMI string form.
func (c Change) Path() string {
	p := c.In.PathString()
	if p == "/" {
		return "/" + c.Node.Name
	}
	return p + "/" + c.Node.Name
}

// Txn is an all-or-nothing change to the tree. It builds the next version
// beside the current one: the first write below an instance copies it,
// and every instance above it, into the new version, which shares all
// else with the current one. Rollback drops the new version; Commit makes
// it current. Readers of the current version are never disturbed. A Txn
// either writes config (gNMI Set) or state (reconcilers), never both.
type Txn struct {
	t     *Tree
	id    uint64
	state bool
	// OperationalEntries lets a state writer create entries of config
	// lists that have no config (the system's own entries, like the
	// default accords); they carry their keys in state only. Off by
	// default so a late state write cannot resurrect a deleted entry.
	OperationalEntries bool
	// base is the root of the version the transaction started from; old,
	// made on first use, a read-only tree over it.
	base *Inst
	old  *Tree
	// touched lists every instance the transaction made, in the order it
	// made them; removed, every list entry it took out (as the version it
	// was building held it). What it changed is derived from both.
	touched []touch
	removed []*Inst
	// writes counts leaf writes that changed a value: about the number
	// of changes, which sizes their slice up front.
	writes int
	// memos holds, per leaf, the JSON value last parsed for it and the
	// string value last merged into it (leafmemo.go): a value repeated
	// entry after entry (every route's device) is checked once and kept
	// once, shared; spilled holds the memos of leaves whose slot another
	// took.
	memos   *[memoSlots]leafMemo
	spilled map[*Node]leafMemo
	done    bool
	// the last path ApplyRaw parsed: a logged group replays many leaves
	// of one instance.
	lastPath  string
	lastElems []*gpb.PathElem
	// stepBuf is WriteEntry's, reused entry after entry.
	stepBuf []step
	// keyed and below memoise WriteKeyedEntry's schema resolution of its
	// list and WriteEntry's of its leaves (resolvememo.go).
	keyed     keyedMemo
	below     [belowMemos]belowMemo
	belowNext int
	// jp decodes the operations' JSON values (see decodeJSON).
	jp *jsonParser
	// What the transaction changed, derived from base and the new
	// version when asked and kept until the next write (an set).
	changes []Change
	an      *analysis
	// part marks a part transaction of bulkMerge, whose merge plans
	// are its own.
	part  bool
	plans map[*Node]*mergePlan
}

// Begin starts a transaction. state selects a state writer, which may
// write only config false nodes and may not create config list entries.
func (t *Tree) Begin(state bool) (*Txn, error) {
	if t.snapshot {
		return nil, errors.New("begin transaction: a snapshot is read-only")
	}
	if t.tx != nil {
		return nil, errors.New("begin transaction: another transaction is open")
	}
	t.txIDs++
	tx := &Txn{t: t, id: t.txIDs, state: state, base: t.root, touched: t.touchBuf}
	t.touchBuf = nil
	t.tx = tx
	return tx, nil
}

// dirty forgets what was derived from the new version.
func (tx *Txn) dirty() {
	if tx.an != nil {
		tx.an, tx.changes = nil, nil
	}
}

// clone copies in into the new version.
func (tx *Txn) clone(in *Inst) *Inst {
	tx.dirty()
	// The copy's container and list arrays are allocated with it where
	// packedInst can: a status written to each of 100,000 existing
	// routes copies each route entry.
	s := in.s
	c := packedInst(s)
	c.s, c.id, c.mark, c.vals = s, in.id, tx.id, in.vals
	if !keysOnly(in) {
		c.vals = slices.Clone(in.vals)
	}
	switch {
	case in.sub0 == nil:
		c.sub0 = nil
	case c.sub0 == nil:
		c.sub0 = cloneArray(in.sub0, s.nsubs)
	default:
		copy(c.subs(), in.subs())
	}
	switch {
	case in.list0 == nil:
		c.list0 = nil
	case c.list0 == nil:
		c.list0 = cloneArray(in.list0, s.nlists)
	default:
		copy(c.lists(), in.lists())
	}
	tx.touched = appendDoubling(tx.touched, touch{orig: in, cur: c})
	return c
}

// create makes a new instance in the new version.
func (tx *Txn) create(s *Node, id *ident) *Inst {
	return tx.made(newInst(s, id, tx.id, tx.valRoom()))
}

// reserveTouched makes room for n more instances in the touched list.
func (tx *Txn) reserveTouched(n int) {
	if cap(tx.touched)-len(tx.touched) < n {
		tx.touched = append(make([]touch, 0, len(tx.touched)+n), tx.touched...)
	}
}

// made records c, an instance the transaction has just made.
func (tx *Txn) made(c *Inst) *Inst {
	tx.dirty()
	tx.touched = appendDoubling(tx.touched, touch{cur: c})
	return c
}

// root returns the new version's root, ready for writing.
func (tx *Txn) root() *Inst {
	if tx.t.root.mark != tx.id {
		tx.t.root = tx.clone(tx.t.root)
	}
	return tx.t.root
}

// sub returns container child n of parent (which the transaction owns)
// ready for writing, creating it when create is set; nil when absent.
func (tx *Txn) sub(parent *Inst, n *Node, create bool) *Inst {
	c := parent.subs()[n.slot]
	switch {
	case c == nil && !create:
		return nil
	case c == nil:
		c = tx.create(n, parent.id)
		parent.subs()[n.slot] = c
	case c.mark != tx.id:
		c = tx.clone(c)
		parent.subs()[n.slot] = c
	}
	return c
}

// existing returns parent's entry of list n with key k ready for writing,
// or nil.
func (tx *Txn) existing(parent *Inst, n *Node, k string) *Inst {
	slot := parent.lists()[n.slot].ref(tx.id, k)
	if slot == nil {
		return nil
	}
	if e := *slot; e.mark != tx.id {
		*slot = tx.clone(e)
	}
	return *slot
}

// keysOnly reports whether in's leaf array is its entry's ident's, which
// holds the key slots alone, exactly (see newEntry): a copy of the entry
// shares it, since a key never changes and a leaf past the keys grows
// the copy's array into a new one (the ident's has no room). A status
// written to each of 100,000 existing gRIBI entries copies each entry,
// and its array was an allocation apiece.
func keysOnly(in *Inst) bool {
	return in.id != nil && len(in.vals) > 0 && len(in.id.vals) == len(in.vals) && &in.vals[0] == &in.id.vals[0]
}

// setVal writes one leaf of an instance the transaction owns.
func (tx *Txn) setVal(in *Inst, n *Node, v Value) {
	if in.val(n.slot).Equal(v) {
		return
	}
	tx.dirty()
	tx.writes++
	if n.slot >= len(in.vals) {
		in.vals = growVals(in.vals, n.slot+1, tx.valRoom(), in.s.nvals)
	} else if in.id != nil && in.id.born != tx.id && keysOnly(in) {
		// A key slot of an entry another transaction made, changed
		// (a key is refused before it gets here, but a log replayed
		// writes as it reads): its own array, not the ident's.
		in.vals = slices.Clone(in.vals)
	}
	in.vals[n.slot] = v
}

// valRoom is how many leaf slots a new leaf array has room for at
// least: see growVals.
func (tx *Txn) valRoom() int {
	if tx.state {
		return 1
	}
	return 4
}

// growVals returns vals lengthened to n, in place when the array has
// room: it is this version's own (made by newInst or clone); an ident
// sharing it reads only the key slots, which are inside its length. A
// new array has room for at least room slots (at most all) and doubles.
// A config writer asks for 4, so that writing a container's leaves one
// by one (a route's config: its key mirrors, then its device) allocates
// once, not once a leaf; a state writer for 1, since state containers
// mostly hold their first slot or two (see assignSlots).
func growVals(vals []Value, n, room, all int) []Value {
	if n <= cap(vals) {
		return vals[:n]
	}
	c := min(max(n, 2*cap(vals), room), max(all, n))
	out := make([]Value, n, c)
	copy(out, vals)
	return out
}

// entry returns the list entry with keys ready for writing, creating it
// (and filling its key leaves and their config or state mirrors) when
// create is set.
func (tx *Txn) entry(in *Inst, n *Node, keys []Value, create bool, elems []*gpb.PathElem) (*Inst, error) {
	k := keyString(keys)
	if create && tx.mayCreate(n) {
		// Looked up and, when absent, added in one walk.
		l := &in.lists()[n.slot]
		e, slot := l.getOrAdd(tx.id, k)
		if slot != nil {
			e = tx.made(newEntry(n, in.id, tx.id))
			*slot = e
			tx.fillKeys(e, keys)
			return e, nil
		}
		if e.mark != tx.id {
			e = tx.existing(in, n, k)
		}
		if !tx.state {
			tx.adoptOperational(e)
		}
		return e, nil
	}
	if e := tx.existing(in, n, k); e != nil {
		if !tx.state && create {
			tx.adoptOperational(e)
		}
		return e, nil
	}
	if !create {
		return nil, nil
	}
	return tx.addEntry(in, n, keys, k, elems)
}

// mayCreate reports whether the transaction's writer may create entries
// of list n.
func (tx *Txn) mayCreate(n *Node) bool {
	if tx.state {
		return !n.Config || tx.OperationalEntries
	}
	return n.Config
}

// addEntry creates the entry of list n with keys (whose key string is k)
// below in, which the transaction owns and which has no such entry,
// filling its key leaves and their config or state mirrors.
func (tx *Txn) addEntry(in *Inst, n *Node, keys []Value, k string, elems []*gpb.PathElem) (*Inst, error) {
	if tx.state && n.Config && !tx.OperationalEntries {
		return nil, newErr(ErrNotFound, whereElems(in, n, elems), "state can only be written for entries that exist in config")
	}
	if !tx.state && !n.Config {
		return nil, newErr(ErrReadOnly, whereElems(in, n, elems), "list "+n.Name+" is config false")
	}
	e := tx.made(newEntry(n, in.id, tx.id))
	in.lists()[n.slot].set(tx.id, k, e)
	tx.fillKeys(e, keys)
	return e, nil
}

// fillKeys writes a new entry's key leaves and their config or state
// mirrors.
func (tx *Txn) fillKeys(e *Inst, keys []Value) {
	n := e.s
	for i, kn := range n.Keys {
		tx.setVal(e, kn, keys[i])
		m := kn.configKey
		if tx.state && m != nil && m.Config {
			m = stateMirror(n, kn)
		}
		if m != nil {
			tx.setVal(tx.sub(e, m.Parent, true), m, keys[i])
		}
	}
}

// deleteEntry removes a list entry of parent (which the transaction owns)
// with everything below it. Nothing else is needed: the entry's leaves
// show up as deleted when the new version is compared with the old.
func (tx *Txn) deleteEntry(parent *Inst, n *Node, key string) {
	l := &parent.lists()[n.slot]
	e := l.get(key)
	if e == nil {
		return
	}
	l.del(tx.id, key)
	tx.cut(e)
}

// cut records an entry taken out of its list.
func (tx *Txn) cut(e *Inst) {
	tx.dirty()
	e.id.cut = tx.id
	tx.removed = append(tx.removed, e)
}

// empty removes every entry of list n of in (which the transaction
// owns).
func (tx *Txn) empty(in *Inst, n *Node) {
	in.lists()[n.slot].each(func(_ string, e *Inst) bool {
		tx.cut(e)
		return true
	})
	in.lists()[n.slot] = entries{}
}

// clear unsets the leaves below in that this writer owns, except list
// keys and their mirrors, so "delete .../config" empties the config
// without breaking the entry. in is the version the transaction sees;
// open returns it ready for writing, and is called only when something
// below in must change, so clearing what is already empty copies nothing.
func (tx *Txn) clear(in *Inst, open func() *Inst) {
	var w *Inst
	writable := func() *Inst {
		if w == nil {
			w = open()
		}
		return w
	}
	for _, ch := range in.s.Children {
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if _, key := keyValue(in, ch); !tx.owns(ch) || key {
				continue
			}
			if in.val(ch.slot).IsSet() {
				tx.setVal(writable(), ch, Value{})
			}
		case KindContainer:
			if sub := in.subs()[ch.slot]; sub != nil {
				tx.clear(sub, func() *Inst { return tx.sub(writable(), ch, false) })
			}
		case KindList:
			l := in.lists()[ch.slot]
			if l.n == 0 {
				continue
			}
			if !tx.owns(ch) {
				// Writing an entry in place never reshapes the list, so
				// walking the version read before is safe.
				l.each(func(k string, e *Inst) bool {
					tx.clear(e, func() *Inst { return tx.existing(writable(), ch, k) })
					return true
				})
				continue
			}
			tx.empty(writable(), ch)
		}
	}
}

// owns reports whether this transaction's writer may write node n.
func (tx *Txn) owns(n *Node) bool { return n.Config != tx.state }

// setLeaf writes a leaf on behalf of a client, refusing to change keys.
func (tx *Txn) setLeaf(in *Inst, n *Node, v Value) error {
	if !tx.owns(n) {
		return tx.ownErr(n, childPath{in, n}.String())
	}
	if want, ok := keyValue(in, n); ok && !want.Equal(v) {
		return newErr(ErrKeyLeaf, childPath{in, n}.String(), fmt.Sprintf("value %s differs from the list key %s", v, want))
	}
	tx.setVal(in, n, v)
	return nil
}

// deleteLeaf unsets a leaf on behalf of a client.
func (tx *Txn) deleteLeaf(in *Inst, n *Node) error {
	if !tx.owns(n) {
		return tx.ownErr(n, childPath{in, n}.String())
	}
	if _, ok := keyValue(in, n); ok {
		return newErr(ErrKeyLeaf, childPath{in, n}.String(), "a list key cannot be deleted; delete the list entry instead")
	}
	tx.setVal(in, n, Value{})
	return nil
}

func (tx *Txn) ownErr(n *Node, at string) error {
	if tx.state {
		return newErr(ErrReadOnly, at, "state writers may not write config nodes")
	}
	return newErr(ErrReadOnly, at, "node "+n.Name+" is config false")
}

// keyValue returns the key value n must hold when n is a key leaf of
// entry in or a mirror of one in its config/state container.
func keyValue(in *Inst, n *Node) (Value, bool) {
	if in.s.Kind == KindList {
		for i, k := range in.s.Keys {
			if k == n {
				return in.key(i), true
			}
		}
		return Value{}, false
	}
	list := in.s.Parent
	if list == nil || list.Kind != KindList || in.id == nil {
		return Value{}, false
	}
	for i, k := range list.Keys {
		if k.configKey == n {
			return Ident{id: in.id, s: list}.key(i), true
		}
	}
	return Value{}, false
}

// Rollback drops the new version: the tree is exactly as before Begin.
func (tx *Txn) Rollback() {
	if tx.done {
		return
	}
	tx.t.root = tx.base
	tx.finish()
}

// Commit ends the transaction, keeping its writes: the new version
// becomes current (and immutable). The caller has already validated and
// persisted it.
func (tx *Txn) Commit() {
	if tx.done {
		return
	}
	an := tx.analyze()
	if an.leaves == 0 {
		// Nothing changed: keep the version readers already have rather
		// than copies of it (a rewrite of equal values copies the path).
		tx.t.root = tx.base
	}
	an.apply(tx.t)
	tx.finish()
}

func (tx *Txn) finish() {
	if cap(tx.touched) <= maxTouchBuf {
		clear(tx.touched) // holds no instance of this version
		tx.t.touchBuf = tx.touched[:0]
	}
	if tx.memos != nil {
		clear(tx.memos[:]) // nor any value
		tx.t.memoBuf = tx.memos
	}
	if tx.jp != nil {
		if !tx.t.jsonNames.reset() {
			tx.t.jsonNames = nil
		}
		for _, p := range tx.t.plans {
			p.drop()
		}
	}
	tx.done = true
	tx.changes, tx.an = nil, nil
	tx.touched, tx.removed, tx.old, tx.memos, tx.spilled, tx.jp = nil, nil, nil, nil, nil, nil
	tx.t.tx = nil
}

// Changes returns the transaction's net per-leaf changes: a leaf written
// and restored within the transaction is absent. They come in tree order
// (schema order within an instance, a list's entries in its own order),
// every instance's changes together; when an entry was deleted and
// created again, its deletes come before its updates.
func (tx *Txn) Changes() []Change {
	tx.analyze()
	return tx.changes
}

// Before returns the value leaf n of the instance x names held when the
// transaction began: zero where the leaf was unset or the instance absent
// (the transaction created it, or deleted it and created it again, which
// makes a new identity). The version the transaction started from never
// changes, so this reads it directly; a check that authorizes a commit by
// what it changes uses it to see what was there before.
func (tx *Txn) Before(x Ident, n *Node) Value {
	if tx.old == nil {
		tx.old = &Tree{schema: tx.t.schema, root: tx.base, snapshot: true}
	}
	in := tx.old.Resolve(x)
	if in == nil || n == nil || n.Parent != in.s || (n.Kind != KindLeaf && n.Kind != KindLeafList) {
		return Value{}
	}
	return in.val(n.slot)
}

// Empty reports whether the transaction changed nothing.
func (tx *Txn) Empty() bool { return len(tx.Changes()) == 0 }

// whereElems renders a client path when one is known, else the child of
// an instance.
func whereElems(in *Inst, n *Node, elems []*gpb.PathElem) string {
	if elems != nil {
		return renderElems(elems)
	}
	return childPath{in, n}.String()
}

// stateMirror returns state/<key> of list n, where an operational entry
// keeps its key, or nil.
func stateMirror(n, key *Node) *Node {
	st := n.byName["state"]
	if st == nil || st.Kind != KindContainer {
		return nil
	}
	if m := st.byName[key.Name]; m != nil && m.Kind == KindLeaf {
		return m
	}
	return nil
}

// adoptOperational gives an entry that a state writer created its config
// key mirrors once a config writer writes under it.
func (tx *Txn) adoptOperational(e *Inst) {
	for _, kn := range e.s.Keys {
		m := kn.configKey
		if m == nil || !m.Config {
			continue
		}
		if sub := e.subs()[m.Parent.slot]; sub != nil && sub.val(m.slot).IsSet() {
			continue
		}
		tx.setVal(tx.sub(e, m.Parent, true), m, e.val(kn.slot))
	}
}
