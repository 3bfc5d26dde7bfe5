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
