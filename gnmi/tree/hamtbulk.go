package tree

// A bulk Set's 100,000 new entries were added to their empty list one
// by one after bulkMerge built them on both cores: about 30 ms on one
// core. An entry's place below the trie's root depends only on its
// key's hash, the root's 32 positions partition the keys, and the layout
// is canonical, so fillEmpty builds the subtries of the first half of the
// positions on one core and those of the second half on the other, and
// the root over them: the trie that adding them one by one makes. Only
// the keys' hashes are kept aside (8 bytes an entry), not the entries
// sorted by position: a bulk Set allocates enough already.

// fillEmpty fills m, an empty list, with the entries of parts, as
// getOrAdd adding them in order would: every node owned by owner. It
// reports false, and leaves m as it was, when two entries have one key.
func (m *entries) fillEmpty(owner uint64, parts [2][]keyedInst) bool {
	n := len(parts[0]) + len(parts[1])
	if n == 0 {
		return true // an empty list holds no nodes
	}
	// Each part's keys hashed on a core of their own.
	hs := make([]uint64, n)
	hashPart := func(i int) {
		at := 0
		if i == 1 {
			at = len(parts[0])
		}
		for j, x := range parts[i] {
			hs[at+j] = keyHash(x.k)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); hashPart(1) }()
	hashPart(0)
	<-done
	// A subtrie for each root position, the entries added in order; one
	// that holds a single entry gives it to the root instead.
	var kids [1 << hashBits]*hnode
	build := func(from, to uint64) bool {
		i := 0
		for _, part := range parts {
			for _, x := range part {
				h := hs[i]
				i++
				if p := h & hashMask; p >= from && p < to {
					kid := kids[p]
					if kid == nil {
						kid = &hnode{owner: owner}
					}
					var added bool
					if kids[p], added = kid.set(owner, hashBits, h, x.k, x.e); !added {
						return false
					}
				}
			}
		}
		return true
	}
	const half = (1 << hashBits) / 2
	var ok1 bool
	done = make(chan struct{})
	go func() { defer close(done); ok1 = build(half, 1<<hashBits) }()
	ok0 := build(0, half)
	<-done
	if !ok0 || !ok1 {
		return false
	}
	nents, nkids := 0, 0
	for _, kid := range kids {
		switch {
		case kid == nil:
		case kid.single():
			nents++
		default:
			nkids++
		}
	}
	root := newHnodeKids(owner, nents, nkids)
	for p, kid := range kids {
		bit := uint32(1) << p
		switch {
		case kid == nil:
		case kid.single():
			root.ents = append(root.ents, kid.ents[0])
			root.datamap |= bit
		default:
			root.kids = append(root.kids, kid)
			root.nodemap |= bit
		}
	}
	m.root, m.n = root, n
	return true
}
