package tree

import (
	"errors"
	"fmt"
)

// Validate checks what the transaction changed, not the whole tree:
// mandatory leaves of every list entry it changed (types, ranges and
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
	an := tx.analyze()
	t := tx.t
	for _, r := range an.refChecks {
		if err := t.checkRef(an, r.b, r.n, r.nv); err != nil {
			add(newErr(ErrLeafref, childPath{r.b, r.n}.String(), err.Error()))
		}
	}
	for _, r := range an.removed {
		in := r.b
		if in == nil {
			in = r.a
		}
		for _, e := range elems(r.ov) {
			s := e.String()
			if countAfter(t.targets, an.targets, r.n, s) == 0 {
				if refs := countAfter(t.refs, an.refs, r.n, s); refs > 0 {
					add(newErr(ErrLeafref, childPath{in, r.n}.String(),
						fmt.Sprintf("%s is still referenced by %d leafref(s)", s, refs)))
				}
			}
		}
	}
	for _, e := range an.entries {
		tx.checkMandatory(e, e.s, e, add)
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

// checkRef verifies that every element of v exists at n's leafref target
// once the analysed transaction commits.
func (t *Tree) checkRef(an *analysis, in *Inst, n *Node, v Value) error {
	tt := n.Type
	if tt.Target == nil {
		return nil
	}
	for _, e := range elems(v) {
		s := e.String()
		if !tt.relative {
			if countAfter(t.targets, an.targets, tt.Target, s) <= 0 {
				return fmt.Errorf("%s does not exist at %s", s, tt.Target.Path)
			}
			continue
		}
		if !t.relativeHas(in, n, e) {
			return fmt.Errorf("%s does not exist at %s", s, tt.refPath)
		}
	}
	return nil
}

// relativeHas follows a relative leafref from the instance holding leaf n
// and reports whether the target leaf holds v: up to the nearest instance
// whose schema contains the target, then down through containers.
func (t *Tree) relativeHas(in *Inst, n *Node, v Value) bool {
	target := n.Type.Target
	x := in.Ident()
	for !x.IsZero() && !schemaContains(x.s, target.Parent) {
		x = x.Parent()
	}
	if x.IsZero() {
		return false
	}
	var down []*Node
	for p := target.Parent; p != x.s; p = p.Parent {
		down = append(down, p)
	}
	cur := t.Resolve(x)
	for i := len(down) - 1; i >= 0 && cur != nil; i-- {
		if down[i].Kind != KindContainer {
			return false
		}
		cur = cur.subs()[down[i].slot]
	}
	if cur == nil {
		return false
	}
	for _, e := range elems(cur.val(target.slot)) {
		if e.Equal(v) {
			return true
		}
	}
	return false
}

// schemaContains reports whether schema node a is n or an ancestor of n.
func schemaContains(a, n *Node) bool {
	for p := n; p != nil; p = p.Parent {
		if p == a {
			return true
		}
	}
	return false
}

// checkMandatory reports config leaves marked mandatory that are unset in
// the containers of list entry in, not descending into nested lists
// (entries of their own). A container without data under an entry still
// exists in YANG terms, so its mandatory leaves are reported missing.
// s is in's schema node (in is nil for a container without data), below
// entry's, which names the path only when a leaf is missing: the check
// runs for every new entry of a bulk Set and almost never fails.
func (tx *Txn) checkMandatory(in *Inst, s *Node, entry *Inst, add func(error)) {
	for _, ch := range s.Children {
		if !ch.Config {
			continue
		}
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if ch.Mandatory && (in == nil || !in.val(ch.slot).IsSet()) {
				add(newErr(ErrMandatory, entry.PathString()+schemaBelow(entry.s, s)+"/"+ch.Name, "mandatory leaf "+ch.Name+" is not set"))
			}
		case KindContainer:
			var sub *Inst
			if in != nil {
				sub = in.subs()[ch.slot]
			}
			tx.checkMandatory(sub, ch, entry, add)
		}
	}
}

// schemaBelow renders the schema path from top down to s, a container below
// it ("" when s is top): "/config", "/a/b".
func schemaBelow(top, s *Node) string {
	if s == top || s == nil {
		return ""
	}
	return schemaBelow(top, s.Parent) + "/" + s.Name
}
