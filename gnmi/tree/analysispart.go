package tree

import "runtime"

// A bulk Set's analysis walks 200,000 instances and 500,000 changed
// leaves, a third of the time from the handler's start to the commit's
// publication, on one core while the other waits. The walk reads the
// transaction and writes only what it derives, so analyze splits the
// instances the transaction made in two runs and walks them on both
// cores, each into an analysisPart; joining the parts in order gives the
// analysis and the changes one walk would (the entries to check are
// listed at their first change, the index deltas summed).

// splitAnalysisMin is how many instances a transaction must have made
// for analyze to walk them in two runs; a variable so that tests walk
// small transactions both ways.
var splitAnalysisMin = 8192

// analysisSlack is the least room analyze leaves each run beyond its
// guessed share of the changes; a variable so that tests make runs
// outgrow their room.
var analysisSlack = 64

// splitTouched returns where analyze cuts touched in two runs: at a list
// entry near the middle, so that the second run starts with its entry
// known, or len(touched) to walk it in one.
func splitTouched(touched []touch) int {
	if len(touched) < splitAnalysisMin || runtime.GOMAXPROCS(0) < 2 {
		return len(touched)
	}
	mid := len(touched) / 2
	for i := mid; i < len(touched) && i < mid+64; i++ {
		if touched[i].cur.s.Kind == KindList {
			return i
		}
	}
	return mid
}

// analysisPart is what one run of a transaction's changed leaves adds to
// its analysis.
type analysisPart struct {
	tx *Txn
	an *analysis
	// changes is sized at the first kept instance's leaf to room more,
	// unless analyze sized it; grown says it outgrew that.
	changes      []Change
	room         int
	sized, grown bool
	// entries are the entries with changes of their own, in order, each
	// once after a change of another entry: join drops the repeats.
	entries []*Inst
	last    *Inst
	dead    []*ident
}

func newAnalysisPart(tx *Txn, room int) *analysisPart {
	an := &analysis{targets: map[*Node]map[string]int{}, refs: map[*Node]map[string]int{}}
	return &analysisPart{tx: tx, an: an, room: room}
}

// leaf adds one changed leaf.
func (p *analysisPart) leaf(r leafDiff) {
	an := p.an
	an.leaves++
	if r.b != nil && !p.sized {
		p.sized = true
		if cap(p.changes)-len(p.changes) < p.room {
			p.changes = append(make([]Change, 0, len(p.changes)+p.room), p.changes...)
		}
	}
	if len(p.changes) == cap(p.changes) {
		// Double: append grows big slices by a quarter, and a bulk
		// commit's 600,000 changes would be copied a dozen times.
		p.changes = append(make([]Change, 0, max(64, 2*cap(p.changes))), p.changes...)
		p.grown = true
	}
	switch {
	case r.nv.IsSet():
		p.changes = append(p.changes, Change{Op: OpUpdate, In: r.b.Ident(), Node: r.n, Val: r.nv, Old: r.ov})
	case r.b != nil:
		p.changes = append(p.changes, Change{Op: OpDelete, In: r.b.Ident(), Node: r.n, Old: r.ov})
	default:
		p.changes = append(p.changes, Change{Op: OpDelete, In: r.a.Ident(), Node: r.n, Old: r.ov})
	}
	n := r.n
	if n.indexed {
		count(an.targets, n, r.ov, -1)
		count(an.targets, n, r.nv, +1)
		if r.ov.IsSet() {
			an.removed = append(an.removed, r)
		}
	}
	if t := n.Type; t != nil && t.Kind == TLeafref && t.Target != nil {
		if !t.relative {
			count(an.refs, t.Target, r.ov, -1)
			count(an.refs, t.Target, r.nv, +1)
		}
		if n.configKey == nil && r.nv.IsSet() {
			an.refChecks = append(an.refChecks, r)
		}
	}
	if e := r.entry; !p.tx.state && e != nil && e != p.last {
		p.last = e
		p.entries = appendDoubling(p.entries, e)
	}
}

// join ends p and the part after it (nil when there is none) into the
// analysis and the changes, in order; buf is the array both parts' changes
// started in, and mark numbers the analysis for listing each entry once
// (see ident.listed).
func (p *analysisPart) join(next *analysisPart, buf []Change, mark uint64) (*analysis, []Change) {
	an := p.an
	an.dead = p.dead
	changes := p.changes
	list := func(entries []*Inst) {
		for _, e := range entries {
			if e.id.listed != mark {
				e.id.listed = mark
				an.entries = appendDoubling(an.entries, e)
			}
		}
	}
	list(p.entries)
	if next != nil {
		n := next.an
		an.leaves += n.leaves
		if n := len(changes); !p.grown && !next.grown {
			changes = buf[:n+len(next.changes)]
			copy(changes[n:], next.changes) // down, within buf
		} else {
			changes = append(changes[:n:n], next.changes...)
		}
		an.refChecks = append(an.refChecks, n.refChecks...)
		an.removed = append(an.removed, n.removed...)
		addCounts(an.targets, n.targets)
		addCounts(an.refs, n.refs)
		list(next.entries)
	}
	return an, changes
}

// addCounts adds the index deltas of delta to idx.
func addCounts(idx, delta map[*Node]map[string]int) {
	for n, m := range delta {
		mm := idx[n]
		if mm == nil {
			idx[n] = m
			continue
		}
		for s, d := range m {
			mm[s] += d
		}
	}
}
