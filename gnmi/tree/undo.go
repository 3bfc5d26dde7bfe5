package tree

import gpb "github.com/openconfig/gnmi/proto/gnmi"

// UndoOp is one step of a transaction's inverse: delete the path, or set
// the leaf at the path to Val.
type UndoOp struct {
	Delete bool
	Elems  []*gpb.PathElem
	Val    Value
}

// Undo returns the config operations that turn the tree after this
// transaction back into the tree before it: deletes of the entries it
// created, then the old values of the leaves it changed or removed (which
// recreates entries it deleted). Commit-confirmed persists them so that
// a rollback survives a restart.
func (tx *Txn) Undo() []UndoOp {
	var dels, sets []UndoOp
	leafPath := func(in *Inst, n *Node) []*gpb.PathElem {
		return append(in.Elems(), &gpb.PathElem{Name: n.Name})
	}
	tx.walkChanges(
		func(r leafDiff) {
			if r.born || !r.n.Config {
				return
			}
			in := r.b
			if in == nil {
				in = r.a
			}
			if r.ov.IsSet() {
				sets = append(sets, UndoOp{Elems: leafPath(in, r.n), Val: r.ov})
				return
			}
			if _, key := keyValue(in, r.n); !key {
				dels = append(dels, UndoOp{Delete: true, Elems: leafPath(in, r.n)})
			}
		},
		func(a, b *Inst, outerBorn bool) {
			// An entry the transaction created goes, with all below it.
			if a == nil && !outerBorn && b.s.Config {
				dels = append(dels, UndoOp{Delete: true, Elems: b.Elems()})
			}
		})
	return append(dels, sets...)
}
