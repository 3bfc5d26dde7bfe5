package tree

import (
	"fmt"
	"testing"
)

// TestNodeCopyAllocations: a trie node of a few entries copied for
// another transaction is one allocation (the node with its entries), and
// an insert into a node the transaction owns whose entries are full
// replaces the node, so that no array allocated with a node is left
// unused and alive.
func TestNodeCopyAllocations(t *testing.T) {
	n := newHnode(1, 3)
	n.ents = append(n.ents, hentry{key: "a"}, hentry{key: "b"}, hentry{key: "c"})
	n.datamap = 0b111
	if got := testing.AllocsPerRun(100, func() { _ = n.editableRoom(2, 0, 0) }); got != 1 {
		t.Errorf("copying a node of 3 entries: %v allocations, want 1", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = n.editableRoom(2, 1, 0) }); got != 1 {
		t.Errorf("copying a node of 3 entries with room for one more: %v allocations, want 1", got)
	}

	// The owner's own node, full: an entry more gets a new node with
	// room, sharing the children, rather than n's entries grown outside
	// the allocation they were made in.
	n.kids = []*hnode{{}}
	c := n.editableRoom(1, 1, 0)
	if c == n || cap(c.ents) < 4 || len(c.ents) != 3 || &c.kids[0] != &n.kids[0] {
		t.Errorf("full owned node: got %p (n %p) with %d of %d entries", c, n, len(c.ents), cap(c.ents))
	}
	if c := n.editableRoom(1, 0, 1); c != n {
		t.Errorf("owned node, a child more: copied, want written in place")
	}

	// An inner node of many children (the trie's second level in a
	// 100,000-entry list) is copied as one allocation too, with room
	// for every child, and its copy's children are its own; the owner's
	// full node of many children moves them into the new node rather
	// than keep the old one's allocation alive.
	in := newHnodeKids(1, 2, 20)
	in.ents = append(in.ents, hentry{key: "a"}, hentry{key: "b"})
	for range 20 {
		in.kids = append(in.kids, &hnode{})
	}
	if got := testing.AllocsPerRun(100, func() { _ = in.editableRoom(2, 0, 1) }); got != 1 {
		t.Errorf("copying a node of 2 entries and 20 children: %v allocations, want 1", got)
	}
	ic := in.editableRoom(2, 0, 1)
	ic.kids[0] = nil
	ic.kids = append(ic.kids, &hnode{})
	if in.kids[0] == nil || len(in.kids) != 20 || cap(ic.kids) < 21 {
		t.Errorf("a copy's children write through to the original's (%d of %d)", len(ic.kids), cap(ic.kids))
	}
	full := newHnodeKids(1, 2, 20)
	full.ents = append(full.ents, hentry{key: "a"}, hentry{key: "b"})
	full.kids = append(full.kids, in.kids...)
	fc := full.editableRoom(1, 1, 0)
	if fc == full || &fc.kids[0] == &full.kids[0] || len(fc.kids) != 20 || fc.kids[3] != in.kids[3] || len(fc.ents) != 2 {
		t.Errorf("full owned node of 20 children: the new node shares the old one's children array or lost some")
	}

	// A list filled by one transaction through such replacements holds
	// all it was given.
	var m entries
	for i := range 2000 {
		m.set(7, fmt.Sprint("k", i), &Inst{})
	}
	if m.n != 2000 {
		t.Fatalf("list holds %d entries, want 2000", m.n)
	}
	for i := range 2000 {
		if m.get(fmt.Sprint("k", i)) == nil {
			t.Fatalf("k%d missing", i)
		}
	}
}
