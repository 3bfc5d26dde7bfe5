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
	born := make(map[*Inst]bool)
	for _, ti := range tx.touched {
		if ti.born {
			born[ti.in] = true
		}
	}
	underBorn := func(in *Inst) bool {
		for p := in.parent; p != nil; p = p.parent {
			if born[p] && p.s.Kind == KindList {
				return true
			}
		}
		return false
	}
	var dels, sets []UndoOp
	leafPath := func(in *Inst, n *Node) []*gpb.PathElem {
		return append(in.Elems(), &gpb.PathElem{Name: n.Name})
	}
	for _, ti := range tx.touched {
		in := ti.in
		if ti.born {
			if in.dead || underBorn(in) || !attached(in) {
				continue
			}
			if in.s.Kind == KindList {
				if in.s.Config {
					dels = append(dels, UndoOp{Delete: true, Elems: in.Elems()})
				}
				continue
			}
			for _, ch := range in.s.Children {
				if (ch.Kind == KindLeaf || ch.Kind == KindLeafList) && ch.Config && in.vals[ch.slot].IsSet() {
					if _, key := keyValue(in, ch); !key {
						dels = append(dels, UndoOp{Delete: true, Elems: leafPath(in, ch)})
					}
				}
			}
			continue
		}
		for _, ch := range in.s.Children {
			if (ch.Kind != KindLeaf && ch.Kind != KindLeafList) || !ch.Config {
				continue
			}
			orig, cur := ti.orig[ch.slot], in.vals[ch.slot]
			if in.dead {
				cur = Value{}
			}
			switch {
			case orig.Equal(cur):
			case orig.IsSet():
				sets = append(sets, UndoOp{Elems: leafPath(in, ch), Val: orig})
			default:
				dels = append(dels, UndoOp{Delete: true, Elems: leafPath(in, ch)})
			}
		}
	}
	return append(dels, sets...)
}
