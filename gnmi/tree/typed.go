package tree

// Access by schema node, for the generated typed readers (gen/kedgetree),
// which resolve their nodes once: Entries and Len by name cost a map
// lookup per call, these an index. n must be a list child of the
// instance's schema node; any other node reads as an empty list.

// EntriesAt calls fn for each entry of list child n, in no particular
// order, until fn returns false.
func (in *Inst) EntriesAt(n *Node, fn func(*Inst) bool) {
	if n.Parent != in.s || n.Kind != KindList {
		return
	}
	in.lists()[n.slot].each(func(_ string, e *Inst) bool { return fn(e) })
}

// LenAt returns the number of entries of list child n.
func (in *Inst) LenAt(n *Node) int {
	if n.Parent != in.s || n.Kind != KindList {
		return 0
	}
	return in.lists()[n.slot].n
}

// EntryAt returns the entry of list child n whose keys are keys (in the
// list's key order, typed as the tree holds them), or nil.
func (in *Inst) EntryAt(n *Node, keys []Value) *Inst {
	if n.Parent != in.s || n.Kind != KindList || len(keys) != len(n.Keys) {
		return nil
	}
	return in.lists()[n.slot].get(keyString(keys))
}
