package tree

// A transaction does not log what it writes: what it changed is the
// difference between the version it started from and the one it built.
// The two share every instance and list node the transaction did not
// copy, so comparing them descends only where pointers differ, and a
// single-leaf commit into a 100,000-route tree compares a few dozen
// pointers.

// leafDiff is one leaf whose value differs between two versions.
type leafDiff struct {
	a, b   *Inst // the leaf's instance before and after; one may be nil
	n      *Node
	ov, nv Value
	// entry is the nearest list entry at or above b (nil when b is nil or
	// above every entry); born says b is inside, or is, an entry that the
	// newer version added.
	entry *Inst
	born  bool
}

// differ walks the difference between two versions of the tree.
type differ struct {
	// leaf is called for every differing leaf; the record is reused.
	leaf func(*leafDiff)
	// entry, when set, is called for every list entry on one side only
	// (an entry deleted and created again counts as both), before its
	// leaves; outerBorn says it sits inside an added entry.
	entry func(a, b *Inst, outerBorn bool)
	r     leafDiff
}

func (d *differ) run(a, b *Inst) {
	if a != b {
		d.inst(a, b, nil, false)
	}
}

// inst compares two versions of one instance (either may be nil).
func (d *differ) inst(a, b, entry *Inst, born bool) {
	s := a
	if b != nil {
		s = b
		if b.s.Kind == KindList {
			entry = b
		}
	}
	for _, ch := range s.s.Children {
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			var ov, nv Value
			if a != nil {
				ov = a.vals[ch.slot]
			}
			if b != nil {
				nv = b.vals[ch.slot]
			}
			if ov.Equal(nv) {
				continue
			}
			d.r = leafDiff{a: a, b: b, n: ch, ov: ov, nv: nv, entry: entry, born: born}
			d.leaf(&d.r)
		case KindContainer:
			var x, y *Inst
			if a != nil {
				x = a.subs[ch.slot]
			}
			if b != nil {
				y = b.subs[ch.slot]
			}
			if x != y {
				d.inst(x, y, entry, born)
			}
		case KindList:
			var la, lb entries
			if a != nil {
				la = a.lists[ch.slot]
			}
			if b != nil {
				lb = b.lists[ch.slot]
			}
			diffEntries(la, lb, func(_ string, x, y *Inst) {
				if x != nil && y != nil && x.id != y.id {
					d.entryDiff(x, nil, entry, born)
					d.entryDiff(nil, y, entry, born)
					return
				}
				d.entryDiff(x, y, entry, born)
			})
		}
	}
}

func (d *differ) entryDiff(x, y, entry *Inst, born bool) {
	if (x == nil || y == nil) && d.entry != nil {
		d.entry(x, y, born)
	}
	d.inst(x, y, entry, born || x == nil)
}

// analysis is what Validate and Commit need to know of a transaction:
// how the leafref indexes move, which leafrefs and removed values to
// check, which entries to check for mandatory leaves, and which entries
// it removed.
type analysis struct {
	targets, refs map[*Node]map[string]int // deltas
	refChecks     []leafDiff               // leafrefs set to a new value
	removed       []leafDiff               // indexed leaves that lost a value
	entries       []*Inst                  // entries with changes of their own
	dead          []*ident
	leaves        int // leaves that differ
}

func (tx *Txn) analyze() *analysis {
	if tx.an != nil {
		return tx.an
	}
	an := &analysis{targets: map[*Node]map[string]int{}, refs: map[*Node]map[string]int{}}
	var lastEntry *Inst
	seen := map[*Inst]bool{}
	d := differ{
		entry: func(a, b *Inst, _ bool) {
			if b == nil {
				an.dead = append(an.dead, a.id)
			}
		},
		leaf: func(r *leafDiff) {
			an.leaves++
			n := r.n
			if n.indexed {
				count(an.targets, n, r.ov, -1)
				count(an.targets, n, r.nv, +1)
				if r.ov.IsSet() {
					an.removed = append(an.removed, *r)
				}
			}
			if t := n.Type; t != nil && t.Kind == TLeafref && t.Target != nil {
				if !t.relative {
					count(an.refs, t.Target, r.ov, -1)
					count(an.refs, t.Target, r.nv, +1)
				}
				if n.configKey == nil && r.nv.IsSet() {
					an.refChecks = append(an.refChecks, *r)
				}
			}
			if e := r.entry; !tx.state && e != nil && e != lastEntry && !seen[e] {
				seen[e] = true
				lastEntry = e
				an.entries = append(an.entries, e)
			}
		},
	}
	d.run(tx.base, tx.t.root)
	tx.an = an
	return an
}

// apply makes the analysed transaction's effects on the indexes and on
// removed entries permanent.
func (an *analysis) apply(t *Tree) {
	merge := func(idx, delta map[*Node]map[string]int) {
		for n, m := range delta {
			for s, d := range m {
				if d == 0 {
					continue
				}
				mm := idx[n]
				if mm == nil {
					mm = map[string]int{}
					idx[n] = mm
				}
				if mm[s] += d; mm[s] <= 0 {
					delete(mm, s)
				}
			}
		}
	}
	merge(t.targets, an.targets)
	merge(t.refs, an.refs)
	for _, id := range an.dead {
		id.dead.Store(true)
	}
}

// count adds d to each element of v in idx[n].
func count(idx map[*Node]map[string]int, n *Node, v Value, d int) {
	if !v.IsSet() {
		return
	}
	m := idx[n]
	if m == nil {
		m = map[string]int{}
		idx[n] = m
	}
	if v.IsList() {
		for _, e := range v.Elems() {
			m[e.String()] += d
		}
		return
	}
	m[v.String()] += d
}

// countAfter is how many instances (targets) or leafrefs (refs) hold s
// at n once the analysed transaction commits.
func countAfter(idx, delta map[*Node]map[string]int, n *Node, s string) int {
	return idx[n][s] + delta[n][s]
}
