package tree

import "unsafe"

// leafMemo is what a transaction merging JSON remembers of one leaf: the
// JSON value it last parsed for it and the value parsed (parseLeaf), and
// the string value it last merged into it (shared).
type leafMemo struct {
	n    *Node
	in   any
	v    Value
	last Value
}

// memoSlots is the size of a transaction's leaf memo cache: a bulk Set
// writes a handful of leaves entry after entry, and a slot found by the
// node's address costs less than a map lookup for each of them (two map
// lookups a leaf were as much CPU as parsing a route's prefix).
const memoSlots = 64

// memo returns the memo of leaf n: its cache slot, which a leaf whose
// address hashes alike may take over (the memo it held is kept in the
// transaction's spill map and brought back from there), so that each
// leaf's memo is the same as with a map alone. The pointer is good until
// the next call.
func (tx *Txn) memo(n *Node) *leafMemo {
	if tx.memos == nil {
		tx.memos, tx.t.memoBuf = tx.t.memoBuf, nil
		if tx.memos == nil {
			tx.memos = new([memoSlots]leafMemo)
		}
	}
	m := &tx.memos[uintptr(unsafe.Pointer(n))*0x9E3779B97F4A7C15>>58]
	if m.n == n {
		return m
	}
	if m.n != nil {
		if tx.spilled == nil {
			tx.spilled = map[*Node]leafMemo{}
		}
		tx.spilled[m.n] = *m
	}
	*m = tx.spilled[n]
	m.n = n
	return m
}
