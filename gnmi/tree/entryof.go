package tree

import "unsafe"

// EntryFinder finds list entries by identity in any version of the tree,
// reusing one buffer for their key strings. A reader that re-reads the
// 100,000 entries a bulk Set created found each by Inst.Entry, which made
// the keys' slice and the key string on the heap for every one. The zero
// EntryFinder is ready; it is not safe for concurrent use.
type EntryFinder struct {
	buf []byte
}

// Find returns the list entry x names among parent's entries, in the
// version parent belongs to, or nil when it is not there (deleted, or
// created again as a new identity). parent is the instance x's list sits
// in. It is parent.Entry(x.Schema(), x.Keys()...) plus the identity check.
func (f *EntryFinder) Find(parent *Inst, x Ident) *Inst {
	n := x.s
	if x.IsZero() || n.Parent != parent.s || n.Kind != KindList {
		return nil
	}
	b := f.buf[:0]
	for i := range n.Keys {
		if i > 0 {
			b = append(b, 0) // as keyString joins them
		}
		b = x.key(i).appendText(b)
	}
	f.buf = b
	// The string lives only as long as the lookup, which keeps no
	// reference to its key (entries.get), and the buffer is not written
	// until the next Find.
	e := parent.lists()[n.slot].get(unsafe.String(unsafe.SliceData(b), len(b)))
	if e == nil || e.id != x.id {
		return nil
	}
	return e
}
