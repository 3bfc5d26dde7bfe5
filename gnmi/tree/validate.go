package tree

import (
	"errors"
	"fmt"
)

// Validate checks what the transaction changed, not the whole tree:
// mandatory leaves of every list entry it touched (types, ranges and
// patterns were checked when values were decoded), leafrefs held by
// changed leaves, and that no removed value is still referenced. The
// leafref indexes make each check a map lookup, so the cost is
// proportional to the change, which keeps a single-leaf commit far
// inside the 2 ms budget however large the tree grows.
func (tx *Txn) Validate() error {
	var errs []error
	add := func(err error) {
		if len(errs) < 16 { // enough to act on; a 100k-entry mistake should not build 100k errors
			errs = append(errs, err)
		}
	}
	changes := tx.Changes()
	for _, c := range changes {
		n := c.Node
		if n.Type.Kind == TLeafref && n.configKey == nil && c.Op == OpUpdate {
			if err := tx.t.checkRef(c.In, n, c.Val); err != nil {
				add(newErr(ErrLeafref, c.Path(), err.Error()))
			}
		}
	}
	for _, ti := range tx.touched {
		for _, ch := range ti.in.s.Children {
			if !ch.indexed || ti.born {
				continue
			}
			old, cur := ti.orig[ch.slot], ti.in.vals[ch.slot]
			if ti.in.dead {
				cur = Value{}
			}
			if old.Equal(cur) {
				continue
			}
			for _, e := range elems(old) {
				s := e.String()
				if tx.t.targets[ch][s] == 0 && tx.t.refs[ch][s] > 0 {
					add(newErr(ErrLeafref, ti.in.PathString()+"/"+ch.Name,
						fmt.Sprintf("%s is still referenced by %d leafref(s)", s, tx.t.refs[ch][s])))
				}
			}
		}
	}
	if !tx.state {
		checked := make(map[*Inst]bool)
		for _, ti := range tx.touched {
			e := entryOf(ti.in)
			// Top-level containers have no mandatory leaves in Kedge's
			// modules; only list entries are checked.
			if e.parent == nil || checked[e] || !attached(e) {
				continue
			}
			checked[e] = true
			tx.checkMandatory(e, e.s, func() string { return e.PathString() }, add)
		}
	}
	return errors.Join(errs...)
}

func elems(v Value) []Value {
	if v.IsList() {
		return v.Elems()
	}
	if v.IsSet() {
		return []Value{v}
	}
	return nil
}

// checkRef verifies that every element of v exists at n's leafref target.
func (t *Tree) checkRef(in *Inst, n *Node, v Value) error {
	tt := n.Type
	if tt.Target == nil {
		return nil
	}
	for _, e := range elems(v) {
		s := e.String()
		if !tt.relative {
			if t.targets[tt.Target][s] == 0 {
				return fmt.Errorf("%s does not exist at %s", s, tt.Target.Path)
			}
			continue
		}
		if !relativeHas(in, n, tt.refPath, e) {
			return fmt.Errorf("%s does not exist at %s", s, tt.refPath)
		}
	}
	return nil
}

// relativeHas follows a relative leafref path from the instance holding
// leaf n and reports whether the target leaf holds v.
func relativeHas(in *Inst, n *Node, path string, v Value) bool {
	cur := in
	target := n.Type.Target
	// Climb to the instance whose schema is the target's nearest common
	// ancestor with n, then walk down through containers.
	var down []*Node
	for p := target.Parent; p != nil; p = p.Parent {
		if isAncestorInst(cur, p) {
			break
		}
		down = append([]*Node{p}, down...)
	}
	for cur != nil && len(down) > 0 && cur.s != down[0].Parent {
		cur = cur.parent
	}
	for _, d := range down {
		if cur == nil || d.Kind != KindContainer {
			return false
		}
		cur = cur.subs[d.slot]
	}
	if cur == nil {
		return false
	}
	got := cur.vals[target.slot]
	for _, e := range elems(got) {
		if e.Equal(v) {
			return true
		}
	}
	return false
}

func isAncestorInst(in *Inst, s *Node) bool {
	for p := in; p != nil; p = p.parent {
		if p.s == s {
			return true
		}
	}
	return false
}

// entryOf returns the nearest list entry at or above in, or the root.
func entryOf(in *Inst) *Inst {
	for p := in; p != nil; p = p.parent {
		if p.s.Kind == KindList || p.parent == nil {
			return p
		}
	}
	return in
}

// attached reports whether in is still reachable from the root.
func attached(in *Inst) bool {
	for p := in; p.parent != nil; p = p.parent {
		if p.dead {
			return false
		}
	}
	return true
}

// checkMandatory reports config leaves marked mandatory that are unset in
// the containers of list entry in, not descending into nested lists
// (entries of their own). A container without data under an entry still
// exists in YANG terms, so its mandatory leaves are reported missing.
func (tx *Txn) checkMandatory(in *Inst, s *Node, at func() string, add func(error)) {
	for _, ch := range s.Children {
		if !ch.Config {
			continue
		}
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if ch.Mandatory && (in == nil || !in.vals[ch.slot].IsSet()) {
				add(newErr(ErrMandatory, at()+"/"+ch.Name, "mandatory leaf "+ch.Name+" is not set"))
			}
		case KindContainer:
			var sub *Inst
			if in != nil {
				sub = in.subs[ch.slot]
			}
			tx.checkMandatory(sub, ch, func() string { return at() + "/" + ch.Name }, add)
		}
	}
}
