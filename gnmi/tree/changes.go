package tree

import "slices"

// What a transaction changed comes from two records it keeps as it goes:
// every instance it made (a copy of an instance of the version it started
// from, or a new one), in the order it made them, and every list entry it
// removed. Comparing each copy with its original gives the net change of
// its own leaves; a removed entry's leaves, as the older version held
// them, are deleted. Following the order the transaction wrote in keeps a
// bulk Set's 600,000 changes in the order their instances were allocated,
// which is also the order the log and every subscriber read them in.

// touch is one instance a transaction made: a copy of orig, or new.
type touch struct{ orig, cur *Inst }

// leafDiff is one leaf whose value a transaction changed.
type leafDiff struct {
	a, b   *Inst // the leaf's instance before and after; one may be nil
	n      *Node
	ov, nv Value
	// entry is the nearest list entry at or above b (nil when b is nil or
	// above every entry); born says b is inside, or is, an entry that the
	// transaction created.
	entry *Inst
	born  bool
}

// attached reports whether an instance the transaction made is still in
// the version it is building (no entry it sits in was removed since).
func (tx *Txn) attached(in *Inst) bool {
	if len(tx.removed) == 0 {
		return true
	}
	for id := in.id; id != nil; id = id.up {
		if id.cut == tx.id {
			return false
		}
	}
	return true
}

// bornIn reports whether the entry id names, or one it sits in, was
// created by the transaction.
func (tx *Txn) bornIn(id *ident) bool {
	for ; id != nil; id = id.up {
		if id.born == tx.id {
			return true
		}
	}
	return false
}

// walkChanges calls leaf for every leaf whose value the transaction
// changed: first the leaves of the entries it removed, as the version
// before held them, in the order it removed them; then the leaves of the
// instances it made and kept, in the order it first wrote them. entry,
// when set, is called for every entry removed or added, before its
// leaves; outerBorn says an added entry sits inside another added one.
func (tx *Txn) walkChanges(leaf func(leafDiff), entry func(a, b *Inst, outerBorn bool)) {
	tx.walkRemoved(leaf, entry)
	tx.walkTouched(tx.touched, leaf, entry)
}

// walkRemoved is walkChanges over the entries the transaction removed.
func (tx *Txn) walkRemoved(leaf func(leafDiff), entry func(a, b *Inst, outerBorn bool)) {
	var old *Tree
	for _, e := range tx.removed {
		base := e
		if e.mark == tx.id {
			if e.id.born == tx.id {
				continue // never in the version before
			}
			if old == nil {
				old = &Tree{schema: tx.t.schema, root: tx.base}
			}
			base = old.Resolve(e.Ident())
		}
		if base == nil || tx.bornIn(e.id.up) || !tx.attachedAbove(e.id) {
			continue // an entry above it went too, and takes it along
		}
		_ = eachInst(base, func(x *Inst) error {
			if x.s.Kind == KindList && entry != nil {
				entry(x, nil, false)
			}
			for _, ch := range x.s.Children {
				if (ch.Kind == KindLeaf || ch.Kind == KindLeafList) && x.val(ch.slot).IsSet() {
					leaf(leafDiff{a: x, n: ch, ov: x.val(ch.slot)})
				}
			}
			return nil
		})
	}
}

// walkTouched is walkChanges over touched, a run of the instances the
// transaction made, in order. The run may start anywhere: an instance
// whose entry is not the run's last one finds it by identity.
func (tx *Txn) walkTouched(touched []touch, leaf func(leafDiff), entry func(a, b *Inst, outerBorn bool)) {
	var entries map[*ident]*Inst // the kept entries the transaction made, by identity
	var last *Inst
	for _, t := range touched {
		a, b := t.orig, t.cur
		if !tx.attached(b) {
			continue
		}
		var ent *Inst
		switch {
		case b.s.Kind == KindList:
			ent, last = b, b
			if a == nil && entry != nil {
				entry(nil, b, tx.bornIn(b.id.up))
			}
		case b.id == nil:
		case last != nil && last.id == b.id:
			ent = last
		default:
			if entries == nil {
				entries = map[*ident]*Inst{}
				for _, u := range tx.touched {
					if u.cur.s.Kind == KindList && tx.attached(u.cur) {
						entries[u.cur.id] = u.cur
					}
				}
			}
			ent = entries[b.id]
		}
		born := b.id != nil && tx.bornIn(b.id)
		for _, ch := range b.s.Children {
			if ch.Kind != KindLeaf && ch.Kind != KindLeafList {
				continue
			}
			var ov Value
			if a != nil {
				ov = a.val(ch.slot)
			}
			nv := b.val(ch.slot)
			if ov.Equal(nv) {
				continue
			}
			leaf(leafDiff{a: a, b: b, n: ch, ov: ov, nv: nv, entry: ent, born: born})
		}
	}
}

// attachedAbove reports whether no entry above the one id names was
// removed by the transaction.
func (tx *Txn) attachedAbove(id *ident) bool {
	for id = id.up; id != nil; id = id.up {
		if id.cut == tx.id {
			return false
		}
	}
	return true
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

// analyze derives the analysis and the changes, once until the next
// write. The instances the transaction made are walked in two runs, one
// on each core, when there are enough of them (see analysisPart).
func (tx *Txn) analyze() *analysis {
	if tx.an != nil {
		return tx.an
	}
	tx.t.analyses++
	mark := tx.t.analyses
	// The removed entries' leaves come first, their number unknown;
	// then the kept instances' leaves, of which there are at most
	// tx.writes (a leaf differs only where a write changed it), which
	// sizes the first run's changes once, with room for the second's.
	first := newAnalysisPart(tx, tx.writes)
	tx.walkRemoved(first.leaf, func(a, b *Inst, _ bool) {
		if b == nil {
			first.dead = append(first.dead, a.id)
		}
	})
	at := splitTouched(tx.touched)
	var second *analysisPart
	var buf []Change
	if at < len(tx.touched) {
		// Both runs write into one array, each from its own end of
		// it with room for its share of the writes, guessed from its
		// share of the instances, with slack; join moves the second's
		// down behind the first's. A run that outgrows its room
		// grows its own, which join appends.
		share := tx.writes * (len(tx.touched) - at) / len(tx.touched)
		slack := share/128 + analysisSlack
		r := len(first.changes)
		buf = make([]Change, r, r+tx.writes+2*slack)
		copy(buf, first.changes)
		start := r + tx.writes - share + slack
		first.changes, first.sized = buf[:r:start], true
		second = newAnalysisPart(tx, 0)
		second.changes, second.sized = buf[start:start], true
		done := make(chan struct{})
		go func() {
			defer close(done)
			tx.walkTouched(tx.touched[at:], second.leaf, nil)
		}()
		tx.walkTouched(tx.touched[:at], first.leaf, nil)
		<-done
	} else {
		tx.walkTouched(tx.touched, first.leaf, nil)
	}
	an, changes := first.join(second, buf, mark)
	if cap(changes) > len(changes)+len(changes)/4+64 {
		changes = slices.Clone(changes) // the feed keeps them: drop the slack
	}
	tx.an = an
	tx.changes = changes
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
