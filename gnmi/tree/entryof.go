package tree

import (
	"slices"
	"unsafe"
)

// EntryFinder finds list entries by identity in any version of the tree,
// reusing its buffers for their key strings. A reader that re-reads the
// 100,000 entries a bulk Set created found each by Inst.Entry, which made
// the keys' slice and the key string on the heap for every one. The zero
// EntryFinder is ready; it is not safe for concurrent use.
type EntryFinder struct {
	buf  []byte
	ends []int       // FindAll: where each key ends in buf
	byH  []hashedKey // FindAll: the keys in hash order
}

// hashedKey is the i-th key of a FindAll and its hash.
type hashedKey struct {
	h uint64
	i int
}

// Find returns the list entry x names among parent's entries, in the
// version parent belongs to, or nil when it is not there (deleted, or
// created again as a new identity). parent is the instance x's list sits
// in. It is parent.Entry(x.Schema(), x.Keys()...) plus the identity check.
func (f *EntryFinder) Find(parent *Inst, x Ident) *Inst {
	list, ok := listOf(parent, x)
	if !ok {
		return nil
	}
	f.buf = appendKey(f.buf[:0], x)
	// The string lives only as long as its hashing, which keeps no
	// reference to it.
	return list.getIdent(keyHash(unsafe.String(unsafe.SliceData(f.buf), len(f.buf))), x.id)
}

// FindAll sets out[i] to Find(parent, xs[i]) for each of xs (out is at
// least as long). It looks the entries up in the order of their keys'
// hashes, which is the trie's: consecutive lookups share the nodes on
// their paths, which lookups in the Set's order each fetched from memory
// again. In BenchmarkObserveBulk (models/intent) the lookups of a
// 100,000-route Set's parts took about 0.65 of their time in the Set's
// order, comparing identities (getIdent) included.
func (f *EntryFinder) FindAll(parent *Inst, xs []Ident, out []*Inst) {
	// Sized at once, not doubled: a part of a bulk change has thousands
	// of keys (24 bytes is an IPv4 route's prefix and table with room).
	b, ends := slices.Grow(f.buf[:0], 24*len(xs)), slices.Grow(f.ends[:0], len(xs))
	for _, x := range xs {
		if _, ok := listOf(parent, x); ok {
			b = appendKey(b, x)
		}
		ends = append(ends, len(b))
	}
	f.buf, f.ends = b, ends
	byH := slices.Grow(f.byH[:0], len(xs))
	for i, x := range xs {
		out[i] = nil
		if _, ok := listOf(parent, x); ok {
			byH = append(byH, hashedKey{h: keyHash(f.key(i)), i: i})
		}
	}
	slices.SortFunc(byH, func(a, b hashedKey) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return a.i - b.i
	})
	f.byH = byH
	for _, k := range byH {
		x := xs[k.i]
		list, _ := listOf(parent, x)
		out[k.i] = list.getIdent(k.h, x.id)
	}
}

// getIdent is the entry whose key hashes to h if it is the identity id,
// or nil: the entry get would find with the key of id, identified. It
// compares identities, not key strings: an entry whose identity is id
// has id's keys, and one with the same keys but another identity is not
// wanted. Reading the stored keys cost a cache miss an entry, where the
// entry itself is read next anyway.
// It walks the trie as get does, written out again: sharing the walk (a
// function returning the slot's entry or the collision node's, each
// caller comparing) made BenchmarkObserveBulk's all-parts 5-15% slower
// in six alternated pairs.
func (m entries) getIdent(h uint64, id *ident) *Inst {
	n := m.root
	for shift := uint(0); n != nil; shift += hashBits {
		if shift >= hashLimit {
			for _, e := range n.ents {
				if e.in.id == id {
					return e.in
				}
			}
			return nil
		}
		bit := pos(h, shift)
		if n.datamap&bit != 0 {
			if e := n.ents[index(n.datamap, bit)]; e.in.id == id {
				return e.in
			}
			return nil
		}
		if n.nodemap&bit == 0 {
			return nil
		}
		n = n.kids[index(n.nodemap, bit)]
	}
	return nil
}

// key is FindAll's i-th key, pointing into the buffer.
func (f *EntryFinder) key(i int) string {
	from := 0
	if i > 0 {
		from = f.ends[i-1]
	}
	return unsafe.String(unsafe.SliceData(f.buf[from:]), f.ends[i]-from)
}

// listOf returns the list of parent x is an entry of, if x is one of
// parent's lists' entries.
func listOf(parent *Inst, x Ident) (entries, bool) {
	n := x.s
	if x.IsZero() || n.Parent != parent.s || n.Kind != KindList {
		return entries{}, false
	}
	return parent.lists()[n.slot], true
}

// appendKey appends x's key string in its list (as keyString renders it).
func appendKey(b []byte, x Ident) []byte {
	for i := range x.s.Keys {
		if i > 0 {
			b = append(b, 0)
		}
		b = x.key(i).appendText(b)
	}
	return b
}
