package tree

import (
	"unsafe"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// leafMemo is what a transaction merging JSON remembers of one leaf: the
// JSON value it last parsed for it and the value parsed (parseLeaf), and
// the string value it last merged into it (shared); and what one writing
// entries (WriteEntry) remembers: the text it last decoded for the leaf
// and the value decoded (decodeText).
type leafMemo struct {
	n    *Node
	in   any
	v    Value
	last Value
	// text decoded as textV, when textOK.
	text   string
	textV  Value
	textOK bool
}

// decodeText is decodeLeaf for the leaves WriteEntry writes: a leaf's
// string value is decoded once for a run of equal ones, entry after entry
// (a gRIBI load's session, a status), and the value shared, which
// spares checking it against its type and boxing a copy each time. The
// decoded value depends on the leaf's type and the text alone.
func (tx *Txn) decodeText(n *Node, val *gpb.TypedValue) (Value, error) {
	sv, ok := val.GetValue().(*gpb.TypedValue_StringVal)
	if !ok || n.Kind != KindLeaf {
		return decodeLeaf(n, val)
	}
	m := tx.memo(n)
	if m.textOK && m.text == sv.StringVal {
		return m.textV, nil
	}
	v, err := decodeLeaf(n, val)
	if err == nil {
		m.text, m.textV, m.textOK = sv.StringVal, v, true
	}
	return v, err
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
