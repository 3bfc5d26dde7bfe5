package tree

import "unsafe"

// hnodeWith is a trie node allocated with its entry array E. A bulk
// commit copies a node on nearly every entry's path, and a node near the
// trie's bottom holds a few entries and no children: its copy is then
// one allocation, not the node and its entry array.
type hnodeWith[E any] struct {
	n    hnode
	ents E
}

// newHnode returns an empty node of owner whose ents have room for at
// room entries, allocated with the node when room is small.
func newHnode(owner uint64, room int) *hnode {
	if room <= 0 || room > len(hnodeMakers) {
		c := &hnode{owner: owner}
		if room > 0 {
			c.ents = make([]hentry, 0, room)
		}
		return c
	}
	return hnodeMakers[room-1](owner)
}

// hnodeMakers[i] allocates a node with room for i+1 entries.
var hnodeMakers = [8]func(uint64) *hnode{
	hnodeOf[[1]hentry], hnodeOf[[2]hentry], hnodeOf[[3]hentry], hnodeOf[[4]hentry],
	hnodeOf[[5]hentry], hnodeOf[[6]hentry], hnodeOf[[7]hentry], hnodeOf[[8]hentry],
}

func hnodeOf[E any](owner uint64) *hnode {
	b := new(hnodeWith[E])
	b.n.owner = owner
	var e E
	b.n.ents = unsafe.Slice((*hentry)(unsafe.Pointer(&b.ents)), unsafe.Sizeof(e)/unsafe.Sizeof(hentry{}))[:0]
	return &b.n
}

// kidsInline is how many children a copied node has at least to get
// room for all it can hold (one for each hash position) allocated with
// it. A commit of 1,000 entries into a 100,000-entry list copies about
// 640 of the trie's second-level nodes, of some 30 children each: their
// child arrays were an allocation apiece, a quarter of the trie's bytes
// copied. A node of fewer keeps an array of its own, sized to fit.
const kidsInline = 8

// hnodeKids is a trie node allocated with its entry array E and room for
// every child.
type hnodeKids[E any] struct {
	n    hnode
	ents E
	kids [1 << hashBits]*hnode
}

// newHnodeKids is newHnode for a node about to take kids children: its
// kids are empty with room for them (nil for none), allocated with the
// node and its entries where kids reaches kidsInline and room is small.
func newHnodeKids(owner uint64, room, kids int) *hnode {
	if kids < kidsInline || room < 0 || room >= len(hnodeKidsMakers) {
		c := newHnode(owner, room)
		if kids > 0 {
			c.kids = make([]*hnode, 0, kids)
		}
		return c
	}
	return hnodeKidsMakers[room](owner)
}

// hnodeKidsMakers[i] allocates a node with room for i entries and every
// child.
var hnodeKidsMakers = [5]func(uint64) *hnode{
	hnodeKidsOf[[0]hentry], hnodeKidsOf[[1]hentry], hnodeKidsOf[[2]hentry], hnodeKidsOf[[3]hentry], hnodeKidsOf[[4]hentry],
}

func hnodeKidsOf[E any](owner uint64) *hnode {
	b := new(hnodeKids[E])
	b.n.owner = owner
	var e E
	if n := unsafe.Sizeof(e) / unsafe.Sizeof(hentry{}); n > 0 {
		b.n.ents = unsafe.Slice((*hentry)(unsafe.Pointer(&b.ents)), n)[:0]
	}
	b.n.kids = b.kids[:0]
	return &b.n
}
