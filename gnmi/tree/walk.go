package tree

import (
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Match is one node a (possibly wildcarded) path selected: an instance
// (Node nil), a set leaf or leaf-list of an instance, or never a list.
type Match struct {
	In   *Inst
	Node *Node
}

// Path renders the match's data path.
func (m Match) Path() string {
	if m.Node == nil {
		return m.In.PathString()
	}
	p := m.In.PathString()
	if p == "/" {
		return "/" + m.Node.Name
	}
	return p + "/" + m.Node.Name
}

// Elems returns the match's data path as gNMI elements.
func (m Match) Elems() []*gpb.PathElem {
	e := m.In.Elems()
	if m.Node != nil {
		e = append(e, &gpb.PathElem{Name: m.Node.Name})
	}
	return e
}

// Walk calls fn for every node the path selects. Names may be "*" (any
// child) or "..." (any depth); list keys may be "*" or omitted (any
// entry). An unknown name or an unparsable key is an error; a valid path
// that selects nothing calls fn zero times.
func (t *Tree) Walk(elems []*gpb.PathElem, fn func(Match) error) error {
	if err := CheckPath(t.schema, elems); err != nil {
		return err
	}
	return walk(t.root, elems, fn)
}

// CheckPath validates a possibly wildcarded path against the schema.
func CheckPath(s *Schema, elems []*gpb.PathElem) error {
	return checkPath([]*Node{s.Root}, elems, "")
}

func checkPath(nodes []*Node, elems []*gpb.PathElem, at string) error {
	if len(elems) == 0 {
		return nil
	}
	e := elems[0]
	at += "/" + e.GetName()
	var next []*Node
	switch e.GetName() {
	case "...":
		var all []*Node
		var collect func(n *Node)
		collect = func(n *Node) {
			all = append(all, n)
			for _, c := range n.Children {
				collect(c)
			}
		}
		for _, n := range nodes {
			collect(n)
		}
		if len(elems) == 1 {
			return nil
		}
		return checkPathAny(all, elems[1:], at)
	case "*":
		for _, n := range nodes {
			next = append(next, n.Children...)
		}
	default:
		var firstErr error
		for _, n := range nodes {
			if n.Kind == KindLeaf || n.Kind == KindLeafList {
				continue
			}
			c, err := childNode(n, e.GetName())
			if err != nil {
				firstErr = err
				continue
			}
			next = append(next, c)
		}
		if len(next) == 0 {
			reason := "no such node"
			if firstErr != nil {
				reason = firstErr.Error()
			}
			return newErr(ErrUnknownPath, at, reason)
		}
	}
	for _, n := range next {
		if len(e.GetKey()) == 0 {
			continue
		}
		if n.Kind != KindList {
			if e.GetName() != "*" {
				return newErr(ErrBadPath, at, n.Name+" is not a list and takes no keys")
			}
			continue
		}
		for k, v := range e.GetKey() {
			kn := n.byName[k]
			if kn == nil || !isKey(n, kn) {
				return newErr(ErrBadPath, at, "list "+n.Name+" has no key "+k)
			}
			if v != "*" {
				if _, err := kn.Type.ParseText(v); err != nil {
					return newErr(ErrBadValue, at, "key "+k+": "+err.Error())
				}
			}
		}
	}
	return checkPath(next, elems[1:], at)
}

// checkPathAny accepts the rest of the path if it is valid from any of the
// candidate nodes ("..." may stand for any depth).
func checkPathAny(nodes []*Node, elems []*gpb.PathElem, at string) error {
	var firstErr error
	for _, n := range nodes {
		if n.Kind == KindLeaf || n.Kind == KindLeafList {
			continue
		}
		if _, err := childNode(n, elems[0].GetName()); err != nil && elems[0].GetName() != "*" && elems[0].GetName() != "..." {
			continue
		}
		err := checkPath([]*Node{n}, elems, at)
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return newErr(ErrUnknownPath, at+"/"+elems[0].GetName(), "no such node below")
}

func walk(in *Inst, elems []*gpb.PathElem, fn func(Match) error) error {
	if len(elems) == 0 {
		if in.isEmpty(nil) {
			return nil
		}
		return fn(Match{In: in})
	}
	e := elems[0]
	rest := elems[1:]
	if e.GetName() == "..." {
		if len(rest) == 0 {
			return walk(in, nil, fn)
		}
		return eachInst(in, func(x *Inst) error { return walk(x, rest, fn) })
	}
	if e.GetName() == "*" {
		for _, ch := range in.s.Children {
			if err := walkChild(in, ch, e, rest, fn); err != nil {
				return err
			}
		}
		return nil
	}
	ch, err := childNode(in.s, e.GetName())
	if err != nil {
		return nil // valid elsewhere under "..."; CheckPath rejected true typos
	}
	return walkChild(in, ch, e, rest, fn)
}

func walkChild(in *Inst, ch *Node, e *gpb.PathElem, rest []*gpb.PathElem, fn func(Match) error) error {
	switch ch.Kind {
	case KindLeaf, KindLeafList:
		if len(rest) == 0 && in.vals[ch.slot].IsSet() {
			return fn(Match{In: in, Node: ch})
		}
	case KindContainer:
		if sub := in.subs[ch.slot]; sub != nil {
			return walk(sub, rest, fn)
		}
	case KindList:
		l := in.lists[ch.slot]
		if l == nil {
			return nil
		}
		if keys, exact := exactKeys(ch, e); exact {
			if ent := l.m[keyString(keys)]; ent != nil {
				return walk(ent, rest, fn)
			}
			return nil
		}
		for _, ent := range l.m {
			if keysMatch(ent, e) {
				if err := walk(ent, rest, fn); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// exactKeys returns the parsed keys when e names every key without
// wildcards, so the lookup is a map access rather than a scan.
func exactKeys(n *Node, e *gpb.PathElem) ([]Value, bool) {
	if len(e.GetKey()) != len(n.Keys) {
		return nil, false
	}
	keys := make([]Value, len(n.Keys))
	for i, k := range n.Keys {
		s, ok := e.GetKey()[k.Name]
		if !ok || s == "*" {
			return nil, false
		}
		v, err := k.Type.ParseText(s)
		if err != nil {
			return nil, false
		}
		keys[i] = v
	}
	return keys, true
}

func keysMatch(ent *Inst, e *gpb.PathElem) bool {
	for i, k := range ent.s.Keys {
		s, ok := e.GetKey()[k.Name]
		if !ok || s == "*" {
			continue
		}
		if ent.key(i).String() != s {
			return false
		}
	}
	return true
}

// eachInst calls fn for in and every instance below it, depth first.
func eachInst(in *Inst, fn func(*Inst) error) error {
	if err := fn(in); err != nil {
		return err
	}
	for _, sub := range in.subs {
		if sub != nil {
			if err := eachInst(sub, fn); err != nil {
				return err
			}
		}
	}
	for _, l := range in.lists {
		if l == nil {
			continue
		}
		for _, ent := range l.m {
			if err := eachInst(ent, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Leaves calls fn for every set leaf at or below the match whose schema
// node keep accepts (nil keeps all).
func (m Match) Leaves(keep func(*Node) bool, fn func(in *Inst, n *Node, v Value) error) error {
	if m.Node != nil {
		if keep == nil || keep(m.Node) {
			return fn(m.In, m.Node, m.In.vals[m.Node.slot])
		}
		return nil
	}
	return eachInst(m.In, func(in *Inst) error {
		for _, ch := range in.s.Children {
			if ch.Kind != KindLeaf && ch.Kind != KindLeafList {
				continue
			}
			if v := in.vals[ch.slot]; v.IsSet() && (keep == nil || keep(ch)) {
				if err := fn(in, ch, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
