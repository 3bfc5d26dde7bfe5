package tree

import (
	"errors"
	"fmt"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Op says whether a change set or removed a leaf.
type Op uint8

// Change operations.
const (
	OpUpdate Op = iota + 1
	OpDelete
)

// Change is one net per-leaf change of a transaction. In, Node and the
// path they render are immutable; Val is the new value (zero for deletes)
// and Old the value before the transaction (zero where the leaf was
// absent), for consumers that record both (the notary).
type Change struct {
	Op   Op
	In   *Inst
	Node *Node
	Val  Value
	Old  Value
}

// Path renders the changed leaf's path in gNMI string form.
func (c Change) Path() string { return c.In.PathString() + "/" + c.Node.Name }

// Txn is an all-or-nothing change to the tree. Writes apply in place;
// Rollback restores exactly the state before Begin. A Txn either writes
// config (gNMI Set) or state (reconcilers), never both.
type Txn struct {
	t     *Tree
	id    uint64
	state bool
	// OperationalEntries lets a state writer create entries of config
	// lists that have no config (the system's own entries, like the
	// default accords); they carry their keys in state only. Off by
	// default so a late state write cannot resurrect a deleted entry.
	OperationalEntries bool
	// touched lists every instance written, in first-touch order, with
	// a copy of its leaf values before the transaction (nil for instances
	// the transaction created). Net changes and rollback derive from it.
	touched []touchedInst
	// structural undo records, replayed in reverse on rollback.
	undo []undoRec
	done bool
	// the last path ApplyRaw parsed: a logged group replays many leaves
	// of one instance.
	lastPath  string
	lastElems []*gpb.PathElem
	// changes caches Changes until the next write.
	changes []Change
	cached  bool
	// touchedAt indexes touched by instance for Before, built on first
	// use over the first indexed entries of touched.
	touchedAt map[*Inst]int
	indexed   int
}

type touchedInst struct {
	in   *Inst
	orig []Value
	born bool
}

type undoKind uint8

const (
	uSubAdd undoKind = iota + 1
	uListAdd
	uEntryAdd
	uEntryDel
)

type undoRec struct {
	k   undoKind
	in  *Inst
	n   *Node
	key string
	ent *Inst
}

// Begin starts a transaction. state selects a state writer, which may
// write only config false nodes and may not create config list entries.
func (t *Tree) Begin(state bool) (*Txn, error) {
	if t.tx != nil {
		return nil, errors.New("begin transaction: another transaction is open")
	}
	t.txIDs++
	tx := &Txn{t: t, id: t.txIDs, state: state}
	t.tx = tx
	return tx, nil
}

// touch records in before its first write in this transaction.
func (tx *Txn) touch(in *Inst) {
	if in.mark == tx.id {
		return
	}
	in.mark = tx.id
	tx.touched = append(tx.touched, touchedInst{in: in, orig: append([]Value(nil), in.vals...)})
}

func (tx *Txn) newInst(s *Node, parent *Inst) *Inst {
	in := newInst(s, parent)
	in.mark = tx.id
	tx.touched = append(tx.touched, touchedInst{in: in, born: true})
	return in
}

// setVal writes one leaf, keeping the leafref indexes in step.
func (tx *Txn) setVal(in *Inst, n *Node, v Value) {
	old := in.vals[n.slot]
	if old.Equal(v) {
		return
	}
	tx.touch(in)
	tx.cached = false
	tx.t.reindex(n, old, v)
	in.vals[n.slot] = v
}

func (t *Tree) reindex(n *Node, old, v Value) {
	if n.indexed {
		count(t.targets, n, old, -1)
		count(t.targets, n, v, +1)
	}
	if n.Type != nil && n.Type.Kind == TLeafref && !n.Type.relative && n.Type.Target != nil {
		count(t.refs, n.Type.Target, old, -1)
		count(t.refs, n.Type.Target, v, +1)
	}
}

func count(idx map[*Node]map[string]int, n *Node, v Value, d int) {
	if !v.IsSet() {
		return
	}
	m := idx[n]
	if m == nil {
		m = map[string]int{}
		idx[n] = m
	}
	add := func(s string) {
		if m[s] += d; m[s] <= 0 {
			delete(m, s)
		}
	}
	if v.IsList() {
		for _, e := range v.Elems() {
			add(e.String())
		}
		return
	}
	add(v.String())
}

func (tx *Txn) ensureSub(in *Inst, n *Node) *Inst {
	if sub := in.subs[n.slot]; sub != nil {
		return sub
	}
	sub := tx.newInst(n, in)
	in.subs[n.slot] = sub
	tx.undo = append(tx.undo, undoRec{k: uSubAdd, in: in, n: n})
	return sub
}

func (tx *Txn) ensureList(in *Inst, n *Node) *List {
	if l := in.lists[n.slot]; l != nil {
		return l
	}
	l := &List{s: n, m: map[string]*Inst{}}
	in.lists[n.slot] = l
	tx.undo = append(tx.undo, undoRec{k: uListAdd, in: in, n: n})
	return l
}

// sizeList makes an absent or empty list ready for n entries, so a bulk
// Set of 100,000 routes does not rehash the list's map as it grows.
func (tx *Txn) sizeList(in *Inst, n *Node, entries int) {
	if l := in.lists[n.slot]; l != nil {
		if len(l.m) == 0 {
			l.m = make(map[string]*Inst, entries)
		}
		return
	}
	l := &List{s: n, m: make(map[string]*Inst, entries)}
	in.lists[n.slot] = l
	tx.undo = append(tx.undo, undoRec{k: uListAdd, in: in, n: n})
}

// entry returns the list entry with keys, creating it (and filling its
// key leaves and their config or state mirrors) when create is set.
func (tx *Txn) entry(in *Inst, n *Node, keys []Value, create bool, elems []*gpb.PathElem) (*Inst, error) {
	k := keyString(keys)
	if l := in.lists[n.slot]; l != nil {
		if e := l.m[k]; e != nil {
			if !tx.state && create {
				tx.adoptOperational(e)
			}
			return e, nil
		}
	}
	if !create {
		return nil, nil
	}
	if tx.state && n.Config && !tx.OperationalEntries {
		return nil, newErr(ErrNotFound, whereElems(in, n, elems), "state can only be written for entries that exist in config")
	}
	if !tx.state && !n.Config {
		return nil, newErr(ErrReadOnly, whereElems(in, n, elems), "list "+n.Name+" is config false")
	}
	l := tx.ensureList(in, n)
	e := tx.newInst(n, in)
	l.m[k] = e
	tx.undo = append(tx.undo, undoRec{k: uEntryAdd, in: in, n: n, key: k, ent: e})
	for i, kn := range n.Keys {
		tx.setVal(e, kn, keys[i])
		m := kn.configKey
		if tx.state && m != nil && m.Config {
			m = stateMirror(n, kn)
		}
		if m != nil {
			tx.setVal(tx.ensureSub(e, m.Parent), m, keys[i])
		}
	}
	return e, nil
}

// deleteEntry removes a list entry and everything below it.
func (tx *Txn) deleteEntry(in *Inst, l *List, key string) {
	e := l.m[key]
	if e == nil {
		return
	}
	tx.clear(e, false)
	delete(l.m, key)
	tx.setDead(e, true)
	tx.undo = append(tx.undo, undoRec{k: uEntryDel, in: in, n: l.s, key: key, ent: e})
}

// setDead marks a removed entry (or revives it on rollback), moving its
// key values out of (or back into) the leafref indexes.
func (tx *Txn) setDead(e *Inst, dead bool) {
	tx.touch(e)
	tx.cached = false
	e.dead = dead
	for _, k := range e.s.Keys {
		v := e.vals[k.slot]
		if dead {
			tx.t.reindex(k, v, Value{})
		} else {
			tx.t.reindex(k, Value{}, v)
		}
	}
}

// clear unsets the leaves below in. Whole-entry deletes (all) clear
// everything; otherwise only the nodes this writer owns are cleared and
// key leaves with their mirrors stay, so "delete .../config" empties the
// config without breaking the entry.
func (tx *Txn) clear(in *Inst, ownedOnly bool) {
	for _, ch := range in.s.Children {
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			_, key := keyValue(in, ch)
			if ownedOnly && (!tx.owns(ch) || key) {
				continue
			}
			if key && in.s.Kind == KindList {
				continue // an entry's own keys stay for its path; setDead unindexes them
			}
			tx.setVal(in, ch, Value{})
		case KindContainer:
			if sub := in.subs[ch.slot]; sub != nil {
				tx.clear(sub, ownedOnly)
			}
		case KindList:
			l := in.lists[ch.slot]
			if l == nil || (ownedOnly && !tx.owns(ch)) {
				if l != nil && ownedOnly {
					for _, e := range l.m {
						tx.clear(e, true)
					}
				}
				continue
			}
			for k := range l.m {
				tx.deleteEntry(in, l, k)
			}
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
	if in.parent == nil || in.parent.s.Kind != KindList || in.s.Parent != in.parent.s {
		return Value{}, false
	}
	for i, k := range in.parent.s.Keys {
		if k.configKey == n {
			return in.parent.key(i), true
		}
	}
	return Value{}, false
}

// Rollback restores the tree to its state before Begin.
func (tx *Txn) Rollback() {
	if tx.done {
		return
	}
	for i := len(tx.touched) - 1; i >= 0; i-- {
		ti := tx.touched[i]
		for _, ch := range ti.in.s.Children {
			if ch.Kind != KindLeaf && ch.Kind != KindLeafList {
				continue
			}
			var orig Value
			if !ti.born {
				orig = ti.orig[ch.slot]
			}
			if cur := ti.in.vals[ch.slot]; !cur.Equal(orig) {
				tx.t.reindex(ch, cur, orig)
				ti.in.vals[ch.slot] = orig
			}
		}
	}
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		switch u.k {
		case uSubAdd:
			u.in.subs[u.n.slot] = nil
		case uListAdd:
			u.in.lists[u.n.slot] = nil
		case uEntryAdd:
			delete(u.in.lists[u.n.slot].m, u.key)
		case uEntryDel:
			u.in.lists[u.n.slot].m[u.key] = u.ent
			u.ent.dead = false
			for _, k := range u.ent.s.Keys {
				v := u.ent.vals[k.slot]
				tx.t.reindex(k, Value{}, v)
			}
		}
	}
	tx.finish()
}

// Commit ends the transaction, keeping its writes. The caller has
// already validated and persisted it.
func (tx *Txn) Commit() { tx.finish() }

func (tx *Txn) finish() {
	tx.done = true
	tx.touched, tx.undo, tx.changes, tx.cached = nil, nil, nil, false
	tx.touchedAt, tx.indexed = nil, 0
	tx.t.tx = nil
}

// Changes returns the transaction's net per-leaf changes in first-touch
// order: a leaf written and restored within the transaction is absent.
func (tx *Txn) Changes() []Change {
	if tx.cached {
		return tx.changes
	}
	out := make([]Change, 0, len(tx.touched)*3)
	for _, ti := range tx.touched {
		for _, ch := range ti.in.s.Children {
			if ch.Kind != KindLeaf && ch.Kind != KindLeafList {
				continue
			}
			var orig Value
			if !ti.born {
				orig = ti.orig[ch.slot]
			}
			cur := ti.in.vals[ch.slot]
			if ti.in.dead {
				cur = Value{}
			}
			switch {
			case cur.Equal(orig):
			case cur.IsSet():
				out = append(out, Change{Op: OpUpdate, In: ti.in, Node: ch, Val: cur, Old: orig})
			default:
				out = append(out, Change{Op: OpDelete, In: ti.in, Node: ch, Old: orig})
			}
		}
	}
	tx.changes, tx.cached = out, true
	return out
}

// Before returns the value leaf n of instance in held when the
// transaction began: its current value if the transaction did not touch
// in, zero if the transaction created in. A check that authorizes a
// commit by what it changes uses it to see what was there before.
func (tx *Txn) Before(in *Inst, n *Node) Value {
	if in.mark != tx.id {
		return in.vals[n.slot]
	}
	if tx.touchedAt == nil {
		tx.touchedAt = make(map[*Inst]int, len(tx.touched))
	}
	for ; tx.indexed < len(tx.touched); tx.indexed++ {
		tx.touchedAt[tx.touched[tx.indexed].in] = tx.indexed
	}
	i, ok := tx.touchedAt[in]
	if !ok || tx.touched[i].born {
		return Value{}
	}
	return tx.touched[i].orig[n.slot]
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

// Reserve sizes the transaction's bookkeeping for about n operations, so
// a bulk Set does not spend its time growing slices.
func (tx *Txn) Reserve(n int) {
	if cap(tx.touched) < 2*n {
		tx.touched = append(make([]touchedInst, 0, 2*n), tx.touched...)
	}
	if cap(tx.undo) < 3*n {
		tx.undo = append(make([]undoRec, 0, 3*n), tx.undo...)
	}
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
		if sub := e.subs[m.Parent.slot]; sub != nil && sub.vals[m.slot].IsSet() {
			continue
		}
		tx.setVal(tx.ensureSub(e, m.Parent), m, e.vals[kn.slot])
	}
}
