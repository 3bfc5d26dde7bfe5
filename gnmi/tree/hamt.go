package tree

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// entries holds one list's entries by key string as a persistent hash
// array mapped trie (the CHAMP layout: a node keeps its entries and its
// child nodes in two arrays, each indexed by a bitmap over 32 hash
// positions). A version of the tree shares every node it did not change
// with the version before it, so a commit that changes one entry of a
// 100,000-entry list copies the four or five nodes on that entry's path,
// not the list; copying a Go map per commit would cost milliseconds.
//
// A node whose owner is the open transaction's id was made by that
// transaction and is changed in place: a bulk Set fills a fresh list
// without copying. Once the transaction ends no id matches any more and
// every node is immutable, so readers need no lock.
//
// The layout is canonical (a node below the root never holds a single
// entry and nothing else): the shape depends only on the keys, and a
// list emptied again holds no nodes.
type entries struct {
	root *hnode
	n    int
}

type hentry struct {
	key string
	in  *Inst
}

type hnode struct {
	owner   uint64   // transaction that may change the node in place
	datamap uint32   // hash positions holding an entry
	nodemap uint32   // hash positions holding a child node
	ents    []hentry // in position order; a collision node keeps them unordered
	kids    []*hnode // in position order
}

const (
	hashBits = 5
	hashMask = 1<<hashBits - 1
	// Below this shift all 64 hash bits are used up: a node there is a
	// collision node, a plain array of entries whose keys hash alike.
	hashLimit = 64
)

// hashSeed is per process: iteration order differs between runs, as a
// Go map's does, and nobody can choose keys that collide.
var hashSeed = maphash.MakeSeed()

// keyHash hashes a list entry's key string; tests swap it to force
// collisions.
var keyHash = func(k string) uint64 { return maphash.String(hashSeed, k) }

func pos(h uint64, shift uint) uint32 { return 1 << ((h >> shift) & hashMask) }

func index(bitmap, bit uint32) int { return bits.OnesCount32(bitmap & (bit - 1)) }

// get returns the entry with key k, or nil.
func (m entries) get(k string) *Inst {
	n := m.root
	h := keyHash(k)
	for shift := uint(0); n != nil; shift += hashBits {
		if shift >= hashLimit {
			for _, e := range n.ents {
				if e.key == k {
					return e.in
				}
			}
			return nil
		}
		bit := pos(h, shift)
		if n.datamap&bit != 0 {
			if e := n.ents[index(n.datamap, bit)]; e.key == k {
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

// set makes k map to in, copying the nodes on its path that owner does
// not own.
func (m *entries) set(owner uint64, k string, in *Inst) {
	if m.root == nil {
		m.root = &hnode{owner: owner}
	}
	root, added := m.root.set(owner, 0, keyHash(k), k, in)
	m.root = root
	if added {
		m.n++
	}
}

// getOrAdd returns the entry with key k when there is one, else adds
// an entry with key k and a nil instance and returns where to store its
// instance (which the caller must do before anything else changes the
// list): one walk down the trie where get then set took two, for a bulk
// Set whose entries are all new.
func (m *entries) getOrAdd(owner uint64, k string) (in *Inst, slot **Inst) {
	root := m.root
	if root == nil {
		root = &hnode{owner: owner}
	}
	root, in, slot = root.getOrAdd(owner, 0, keyHash(k), k)
	if slot != nil {
		m.root = root
		m.n++
	}
	return in, slot
}

// getOrAdd returns the entry with key k when n holds it; else n (or its
// copy) with an entry for k added, and the address of its instance.
func (n *hnode) getOrAdd(owner uint64, shift uint, h uint64, k string) (*hnode, *Inst, **Inst) {
	if shift >= hashLimit {
		for _, e := range n.ents {
			if e.key == k {
				return n, e.in, nil
			}
		}
		c := n.editableRoom(owner, 1, 0)
		c.ents = append(c.ents, hentry{key: k})
		return c, nil, &c.ents[len(c.ents)-1].in
	}
	bit := pos(h, shift)
	switch {
	case n.datamap&bit != 0:
		i := index(n.datamap, bit)
		e := n.ents[i]
		if e.key == k {
			return n, e.in, nil
		}
		// Two keys at one position: both move into a new child.
		kid := pair(owner, shift+hashBits, keyHash(e.key), e, h, hentry{key: k})
		c := n.editableRoom(owner, 0, 1)
		c.ents = slices.Delete(c.ents, i, i+1)
		c.datamap &^= bit
		c.kids = slices.Insert(c.kids, index(c.nodemap, bit), kid)
		c.nodemap |= bit
		return c, nil, kid.slot(k)
	case n.nodemap&bit != 0:
		j := index(n.nodemap, bit)
		kid, in, slot := n.kids[j].getOrAdd(owner, shift+hashBits, h, k)
		if slot == nil || kid == n.kids[j] {
			return n, in, slot
		}
		c := n.editable(owner)
		c.kids[j] = kid
		return c, nil, slot
	}
	c := n.editableRoom(owner, 1, 0)
	i := index(c.datamap, bit)
	c.ents = slices.Insert(c.ents, i, hentry{key: k})
	c.datamap |= bit
	return c, nil, &c.ents[i].in
}

// ref returns where the entry with key k keeps its instance, for the
// caller to replace it, with the nodes on its path copied for owner; nil,
// copying nothing, when there is no such entry. A writer that copies an
// entry into its version finds it and stores the copy in one walk, not a
// get and then a set.
func (m *entries) ref(owner uint64, k string) **Inst {
	if m.root == nil {
		return nil
	}
	root, slot := m.root.ref(owner, 0, keyHash(k), k)
	if slot != nil {
		m.root = root
	}
	return slot
}

func (n *hnode) ref(owner uint64, shift uint, h uint64, k string) (*hnode, **Inst) {
	if shift >= hashLimit {
		for i, e := range n.ents {
			if e.key == k {
				c := n.editable(owner)
				return c, &c.ents[i].in
			}
		}
		return n, nil
	}
	bit := pos(h, shift)
	switch {
	case n.datamap&bit != 0:
		i := index(n.datamap, bit)
		if n.ents[i].key != k {
			return n, nil
		}
		c := n.editable(owner)
		return c, &c.ents[i].in
	case n.nodemap&bit != 0:
		j := index(n.nodemap, bit)
		kid, slot := n.kids[j].ref(owner, shift+hashBits, h, k)
		if slot == nil || kid == n.kids[j] {
			return n, slot
		}
		c := n.editable(owner)
		c.kids[j] = kid
		return c, slot
	}
	return n, nil
}

// slot returns the address of the instance of key k in the node pair
// has just made.
func (n *hnode) slot(k string) **Inst {
	for {
		for i := range n.ents {
			if n.ents[i].key == k {
				return &n.ents[i].in
			}
		}
		n = n.kids[0]
	}
}

// del removes k and reports whether it was there.
func (m *entries) del(owner uint64, k string) bool {
	if m.root == nil {
		return false
	}
	root, ok := m.root.del(owner, 0, keyHash(k), k, true)
	if ok {
		m.root = root
		m.n--
	}
	return ok
}

// each calls fn for every entry until fn returns false; it reports
// whether it went through them all.
func (m entries) each(fn func(k string, in *Inst) bool) bool {
	if m.root == nil {
		return true
	}
	return m.root.each(fn)
}

// editable returns n itself when owner may change it, else a copy that
// owner may change.
func (n *hnode) editable(owner uint64) *hnode { return n.editableRoom(owner, 0, 0) }

// editableRoom is editable for a caller about to add ents entries and
// kids children to the node: a copy is made with room for them, rather
// than copied and then grown (a bulk load's commits copy a node on
// nearly every new entry's path, and add the entry to the last).
func (n *hnode) editableRoom(owner uint64, ents, kids int) *hnode {
	if owner != 0 && n.owner == owner {
		if ents == 0 || len(n.ents)+ents <= cap(n.ents) {
			return n
		}
		// Full: a new node, its entries allocated with it where few,
		// takes n's place (the caller stores the node it is given in the
		// parent) and n's children; growing n's entries instead would
		// leave the array allocated with n unused and kept alive.
		// Children allocated with n move into the new node's room
		// rather than keep n alive; an array of their own is shared.
		room := max(len(n.ents)+ents, 2*len(n.ents))
		var c *hnode
		if len(n.kids) >= kidsInline {
			c = newHnodeKids(owner, room, len(n.kids))
			c.kids = append(c.kids, n.kids...)
		} else {
			c = newHnode(owner, room)
			c.kids = n.kids
		}
		c.datamap, c.nodemap = n.datamap, n.nodemap
		c.ents = append(c.ents, n.ents...)
		return c
	}
	c := newHnodeKids(owner, len(n.ents)+ents, len(n.kids)+kids)
	c.datamap, c.nodemap = n.datamap, n.nodemap
	c.ents = append(c.ents, n.ents...)
	c.kids = append(c.kids, n.kids...)
	return c
}

func (n *hnode) set(owner uint64, shift uint, h uint64, k string, in *Inst) (*hnode, bool) {
	if shift >= hashLimit {
		for i, e := range n.ents {
			if e.key == k {
				if e.in == in {
					return n, false
				}
				c := n.editable(owner)
				c.ents[i].in = in
				return c, false
			}
		}
		c := n.editableRoom(owner, 1, 0)
		c.ents = append(c.ents, hentry{key: k, in: in})
		return c, true
	}
	bit := pos(h, shift)
	switch {
	case n.datamap&bit != 0:
		i := index(n.datamap, bit)
		e := n.ents[i]
		if e.key == k {
			if e.in == in {
				return n, false
			}
			c := n.editable(owner)
			c.ents[i].in = in
			return c, false
		}
		// Two keys at one position: both move into a new child.
		kid := pair(owner, shift+hashBits, keyHash(e.key), e, h, hentry{key: k, in: in})
		c := n.editableRoom(owner, 0, 1)
		c.ents = slices.Delete(c.ents, i, i+1)
		c.datamap &^= bit
		c.kids = slices.Insert(c.kids, index(c.nodemap, bit), kid)
		c.nodemap |= bit
		return c, true
	case n.nodemap&bit != 0:
		j := index(n.nodemap, bit)
		kid, added := n.kids[j].set(owner, shift+hashBits, h, k, in)
		if kid == n.kids[j] {
			return n, added
		}
		c := n.editable(owner)
		c.kids[j] = kid
		return c, added
	}
	c := n.editableRoom(owner, 1, 0)
	c.ents = slices.Insert(c.ents, index(c.datamap, bit), hentry{key: k, in: in})
	c.datamap |= bit
	return c, true
}

// pair builds the node that holds two entries whose hashes agree below
// shift.
func pair(owner uint64, shift uint, h1 uint64, e1 hentry, h2 uint64, e2 hentry) *hnode {
	if shift >= hashLimit {
		c := newHnode(owner, 2)
		c.ents = append(c.ents, e1, e2)
		return c
	}
	b1, b2 := pos(h1, shift), pos(h2, shift)
	if b1 == b2 {
		return &hnode{owner: owner, nodemap: b1, kids: []*hnode{pair(owner, shift+hashBits, h1, e1, h2, e2)}}
	}
	if b2 < b1 {
		e1, e2 = e2, e1
	}
	c := newHnode(owner, 2)
	c.datamap = b1 | b2
	c.ents = append(c.ents, e1, e2)
	return c
}

// single reports whether n holds exactly one entry and no children: such
// a node is folded into its parent.
func (n *hnode) single() bool { return len(n.ents) == 1 && len(n.kids) == 0 }

func (n *hnode) empty() bool { return len(n.ents) == 0 && len(n.kids) == 0 }

// del returns n without k (nil when nothing is left, unless root).
func (n *hnode) del(owner uint64, shift uint, h uint64, k string, root bool) (*hnode, bool) {
	if shift >= hashLimit {
		for i, e := range n.ents {
			if e.key == k {
				c := n.editable(owner)
				c.ents = slices.Delete(c.ents, i, i+1)
				return c, true
			}
		}
		return n, false
	}
	bit := pos(h, shift)
	switch {
	case n.datamap&bit != 0:
		i := index(n.datamap, bit)
		if n.ents[i].key != k {
			return n, false
		}
		c := n.editable(owner)
		c.ents = slices.Delete(c.ents, i, i+1)
		c.datamap &^= bit
		if c.empty() && !root {
			return nil, true
		}
		return c, true
	case n.nodemap&bit != 0:
		j := index(n.nodemap, bit)
		kid, ok := n.kids[j].del(owner, shift+hashBits, h, k, false)
		if !ok {
			return n, false
		}
		c := n.editable(owner)
		switch {
		case kid == nil || kid.empty():
			c.kids = slices.Delete(c.kids, j, j+1)
			c.nodemap &^= bit
		case kid.single():
			// Fold the child's last entry into this node.
			c.kids = slices.Delete(c.kids, j, j+1)
			c.nodemap &^= bit
			c.ents = slices.Insert(c.ents, index(c.datamap, bit), kid.ents[0])
			c.datamap |= bit
		default:
			c.kids[j] = kid
		}
		if c.empty() && !root {
			return nil, true
		}
		return c, true
	}
	return n, false
}

func (n *hnode) each(fn func(k string, in *Inst) bool) bool {
	for _, e := range n.ents {
		if !fn(e.key, e.in) {
			return false
		}
	}
	for _, kid := range n.kids {
		if !kid.each(fn) {
			return false
		}
	}
	return true
}
