package tree

import (
	"maps"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// EntryWrite is one leaf write of WriteEntry: Path is the leaf's whole
// path, which must lie below the instance's, or with Relative its path
// from the instance down (what lies below the instance's path), which
// spares a writer building each leaf's whole path; Delete removes the
// leaf, else Val is written as Update writes it.
type EntryWrite struct {
	Path     []*gpb.PathElem
	Val      *gpb.TypedValue
	Delete   bool
	Relative bool
}

// EntryWrites hands out leaf writes from chunks, so that a bulk writer
// (gRIBI's entries, the route state of a bulk load) makes one allocation
// per chunk rather than one per entry. The chunks start small and double
// up to entryWriteChunk: a writer of one entry's state (a one-route Set)
// would otherwise allocate 20 KB for its one or two writes. A write
// taken is the writer's: the chunk is never reused.
type EntryWrites struct {
	slab []EntryWrite
	size int // the last chunk's
}

// entryWriteChunk is how many leaf writes a chunk holds at most.
const entryWriteChunk = 512

// Take returns n zeroed leaf writes.
func (w *EntryWrites) Take(n int) []EntryWrite {
	if n > entryWriteChunk {
		return make([]EntryWrite, n)
	}
	if len(w.slab) < n {
		w.size = min(max(2*w.size, 4, n), entryWriteChunk)
		w.slab = make([]EntryWrite, w.size)
	}
	ws := w.slab[:n:n]
	w.slab = w.slab[n:]
	return ws
}

// whole returns w's whole path below at.
func (w EntryWrite) whole(at []*gpb.PathElem) []*gpb.PathElem {
	if !w.Relative {
		return w.Path
	}
	return append(append(make([]*gpb.PathElem, 0, len(at)+len(w.Path)), at...), w.Path...)
}

// below returns w's path relative to at.
func (w EntryWrite) below(at []*gpb.PathElem) []*gpb.PathElem {
	if w.Relative {
		return w.Path
	}
	return w.Path[len(at):]
}

// WriteEntry writes leaves of one instance (a list entry or a container)
// in order, with the effect of Update (or Delete) on each leaf's path and
// the same checks: schema, types, keys, which writer owns what, which
// entries a state writer may create. What it saves is the walk: the
// instance at is found (and, on its first change, made ready for
// writing) once for all its leaves, not twice per leaf from the root,
// and its list key is parsed once rather than twice per leaf; a gRIBI
// bulk load writes three leaves of each of 100,000 entries. A write that is
// not a leaf reached through containers below at (a list below the
// instance, say) is applied as Update or Delete on its whole path.
func (tx *Txn) WriteEntry(at []*gpb.PathElem, writes []EntryWrite) error {
	return tx.writeEntry(&entryTarget{elems: at, s: entryNode(tx.t.schema.Root, at)}, writes)
}

// entryTarget is the instance WriteEntry or WriteKeyedEntry writes: its path,
// or the key that names it, whose path is built only where it is needed
// (a write through the general path, an error message).
type entryTarget struct {
	elems []*gpb.PathElem // nil until path builds it from key
	key   *EntryKey
	// s is the instance's schema node, nil for a path Lookup rejects.
	s *Node
	// The keyed form's parents (the containers above the list, schema
	// nodes in path order: the first nparents), from keyedSchema, and
	// checked keys (nil until checkKeys). An array, not a slice of one,
	// so that the target stays on the writer's stack.
	parents  [maxKeyedDepth]*Node
	nparents int
	keys     []Value
}

// path returns the instance's path elements (none for the root).
func (a *entryTarget) path() []*gpb.PathElem {
	if a.elems == nil && a.key != nil {
		a.elems = a.key.Elems()
	}
	return a.elems
}

// writeEntry is WriteEntry and WriteKeyedEntry at target a.
func (tx *Txn) writeEntry(a *entryTarget, writes []EntryWrite) error {
	for _, w := range writes {
		if w.Relative && len(w.Path) == 0 || !w.Relative && !below(a.path(), w.Path) {
			return newErr(ErrBadPath, renderElems(w.whole(a.path())), "not below "+renderElems(a.path()))
		}
	}
	// read is the instance as the transaction sees it (nil while absent);
	// open, the same instance ready for writing once something changed.
	var read, open *Inst
	var f found
	resolve := func() error {
		read, open = nil, nil
		if a.key != nil {
			var err error
			if f, err = tx.findKeyed(a, tx.stepBuf[:0]); err != nil {
				return err
			}
		} else {
			f = tx.find(a.elems, tx.stepBuf[:0])
		}
		if cap(f.steps) > cap(tx.stepBuf) {
			tx.stepBuf = f.steps[:0] // kept for the next entry
		}
		if f.ok {
			read = f.in
			return nil
		}
		tgt, exists, err := tx.t.Lookup(a.path())
		if err != nil {
			return err
		}
		if exists && tgt.Node != nil {
			return newErr(ErrBadPath, renderElems(a.path()), "not an instance")
		}
		if exists {
			read = tgt.In
		}
		return nil
	}
	writable := func() (*Inst, error) {
		if open != nil {
			return open, nil
		}
		switch {
		case f.ok && f.in != nil:
			// What locate does on this path: no list above the
			// instance, so only the instance itself may need adopting.
			open = tx.follow(f.steps)
			if !tx.state && open.s.Kind == KindList {
				tx.adoptOperational(open)
			}
		case f.ok:
			// find has just seen the entry absent, and nothing has been
			// written since: created without looking it up again. The
			// path is built for the refusal only.
			var elems []*gpb.PathElem
			if a.key == nil || !tx.mayCreate(f.list) {
				elems = a.path()
			}
			e, err := tx.addEntry(tx.follow(f.steps), f.list, f.keys, f.key, elems)
			if err != nil {
				return nil, err
			}
			open = e
		default:
			tgt, err := tx.locate(a.path())
			if err != nil {
				return nil, err
			}
			if tgt.Node != nil {
				return nil, newErr(ErrBadPath, renderElems(a.path()), "not an instance")
			}
			open = tgt.In
		}
		read = open
		return open, nil
	}
	if err := resolve(); err != nil {
		return err
	}
	s := a.s
	var chain [4]*Node
	for _, w := range writes {
		var rel []*gpb.PathElem
		if w.Relative {
			rel = w.Path
		} else {
			rel = w.below(a.path())
		}
		n, cs, ok := tx.leafBelowMemo(s, rel, chain[:0])
		if !ok {
			// Not a plain leaf: the general path, then read the instance
			// again, which that write may have copied.
			var err error
			if w.Delete {
				err = tx.Delete(w.whole(a.path()))
			} else {
				err = tx.Update(w.whole(a.path()), w.Val)
			}
			if err != nil {
				return err
			}
			if err := resolve(); err != nil {
				return err
			}
			continue
		}
		// The leaf's instance as read, nil while absent.
		li := read
		for _, c := range cs {
			if li == nil {
				break
			}
			li = li.subs()[c.slot]
		}
		if w.Delete {
			if li == nil || !li.val(n.slot).IsSet() {
				continue // nothing to delete (gNMI specification 3.4.6)
			}
			in, err := writable()
			if err != nil {
				return err
			}
			for _, c := range cs {
				in = tx.sub(in, c, false)
			}
			if err := tx.deleteLeaf(in, n); err != nil {
				return err
			}
			continue
		}
		if w.Val == nil || w.Val.GetValue() == nil {
			return newErr(ErrBadValue, renderElems(w.whole(a.path())), "no value")
		}
		v, err := tx.decodeText(n, w.Val)
		if err != nil {
			return newErr(ErrBadValue, renderElems(w.whole(a.path())), err.Error())
		}
		if li != nil && tx.owns(n) && li.val(n.slot).Equal(v) {
			continue // unchanged: copy nothing
		}
		in, err := writable()
		if err != nil {
			return err
		}
		for _, c := range cs {
			in = tx.sub(in, c, true)
		}
		if err := tx.setLeaf(in, n, v); err != nil {
			return err
		}
	}
	return nil
}

// found is what find read of an instance's path.
type found struct {
	// ok: the path was read; in is the instance, or nil when the entry
	// is absent, and then list and keys are what to create below the
	// instance steps lead to.
	ok    bool
	in    *Inst
	steps []step
	list  *Node
	keys  []Value
	key   string // keys' key string
}

// find reads the path of an instance whose ancestors are containers
// (the lists at the top of the tree's modules) without writing anything:
// the instance, or the entry to create when only it is absent, with the
// steps for follow. Any other path (a list above the instance, a
// container or key missing, a malformed element) is not ok, for Lookup
// and locate to read and report.
func (tx *Txn) find(at []*gpb.PathElem, buf []step) found {
	in, steps := tx.t.root, buf[:0]
	for i, e := range at {
		c, err := childNode(in.s, e.GetName())
		if err != nil {
			return found{}
		}
		last := i == len(at)-1
		switch c.Kind {
		case KindContainer:
			if len(e.GetKey()) > 0 || in.subs()[c.slot] == nil {
				return found{}
			}
			in = in.subs()[c.slot]
			steps = append(steps, step{n: c})
		case KindList:
			if !last {
				return found{}
			}
			ent, k, keys, exact := entryAt(in, c, e.GetKey())
			if !exact {
				return found{}
			}
			if ent == nil {
				return found{ok: true, steps: steps, list: c, keys: keys, key: k}
			}
			return found{ok: true, in: ent, steps: append(steps, step{n: c, key: k})}
		default:
			return found{}
		}
	}
	return found{ok: true, in: in, steps: steps}
}

// below reports whether path lies strictly below at. Paths built from one
// typed path share its elements, so most elements compare as pointers.
func below(at, path []*gpb.PathElem) bool {
	if len(path) <= len(at) {
		return false
	}
	for i, e := range at {
		p := path[i]
		if p != e && (p.GetName() != e.GetName() || !maps.Equal(p.GetKey(), e.GetKey())) {
			return false
		}
	}
	return true
}

// entryNode returns the schema node at names the instance of, or nil when
// a name is unknown (Lookup has reported that already).
func entryNode(n *Node, at []*gpb.PathElem) *Node {
	for _, e := range at {
		c, err := childNode(n, e.GetName())
		if err != nil {
			return nil
		}
		n = c
	}
	return n
}

// leafBelow resolves rel, a path below an instance of schema node s, to a
// leaf or leaf-list reached through containers without keys: the leaf's
// node and the containers on the way (appended to buf). ok is false for
// anything else, which the caller writes through the general path.
func leafBelow(s *Node, rel []*gpb.PathElem, buf []*Node) (n *Node, chain []*Node, ok bool) {
	if s == nil || (s.Kind != KindContainer && s.Kind != KindList) {
		return nil, nil, false
	}
	chain = buf
	for i, e := range rel {
		c, err := childNode(s, e.GetName())
		if err != nil || len(e.GetKey()) > 0 {
			return nil, nil, false
		}
		last := i == len(rel)-1
		switch c.Kind {
		case KindLeaf, KindLeafList:
			if !last {
				return nil, nil, false
			}
			return c, chain, true
		case KindContainer:
			chain = append(chain, c)
			s = c
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}
