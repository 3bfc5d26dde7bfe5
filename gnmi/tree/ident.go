package tree

import (
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Ident is the identity of an instance, the same in every version of the
// tree: its schema node and the list entries (with their keys) it sits
// in. It renders the instance's path and climbs to its parent without
// holding on to any version's data. Idents are comparable and may key a
// map: a list entry deleted and created again with the same keys is a
// new identity, as it is a new instance.
type Ident struct {
	id *ident
	s  *Node
}

// IsZero reports whether x names nothing (the root's parent).
func (x Ident) IsZero() bool { return x.s == nil }

// Schema returns the instance's schema node.
func (x Ident) Schema() *Node { return x.s }

// Parent returns the enclosing instance's identity, zero for the root.
func (x Ident) Parent() Ident {
	p := x.s.Parent
	if p == nil {
		return Ident{}
	}
	if x.s.Kind == KindList {
		return Ident{id: x.id.up, s: p}
	}
	return Ident{id: x.id, s: p}
}

// Child returns the identity of container child n of the instance x
// names (zero when n is not one): the same in every version, whether or
// not the container holds anything there.
func (x Ident) Child(n *Node) Ident {
	if x.IsZero() || n == nil || n.Parent != x.s || n.Kind != KindContainer {
		return Ident{}
	}
	return Ident{id: x.id, s: n}
}

// Keys returns a list entry's key values in key order (nil for a
// container).
func (x Ident) Keys() []Value {
	if x.s.Kind != KindList {
		return nil
	}
	keys := make([]Value, len(x.s.Keys))
	for i, k := range x.s.Keys {
		keys[i] = x.id.vals[k.slot]
	}
	return keys
}

func (x Ident) key(i int) Value { return x.id.vals[x.s.Keys[i].slot] }

// Removed reports whether a committed transaction deleted the list entry
// x names (or an entry x is inside).
func (x Ident) Removed() bool {
	for id := x.id; id != nil; id = id.up {
		if id.dead.Load() {
			return true
		}
	}
	return false
}

// depth counts the path elements from the root to x.
func (x Ident) depth() int {
	d := 0
	for n := x.s; n.Parent != nil; n = n.Parent {
		d++
	}
	return d
}

// Elems returns the gNMI path elements from the root to x.
func (x Ident) Elems() []*gpb.PathElem {
	depth := x.depth()
	elems := make([]*gpb.PathElem, depth)
	for p := x; depth > 0; p = p.Parent() {
		depth--
		e := &gpb.PathElem{Name: p.s.Name}
		if p.s.Kind == KindList {
			e.Key = make(map[string]string, len(p.s.Keys))
			for i, k := range p.s.Keys {
				e.Key[k.Name] = p.key(i).String()
			}
		}
		elems[depth] = e
	}
	return elems
}

// PathString renders x's data path in gNMI string form, e.g.
// /kedge/routes/route[prefix=10.0.0.0/8][table=254].
func (x Ident) PathString() string {
	depth := x.depth()
	if depth == 0 {
		return "/"
	}
	chain := make([]Ident, depth)
	for p := x; depth > 0; p = p.Parent() {
		depth--
		chain[depth] = p
	}
	var b strings.Builder
	for _, p := range chain {
		p.writeElement(&b)
	}
	return b.String()
}

// Element renders x's own path element: "/name" and its keys.
func (x Ident) Element() string {
	var b strings.Builder
	x.writeElement(&b)
	return b.String()
}

// AppendElement appends x's own path element, as Element renders it, to
// b: a caller building paths from its parent's (the store's log encoder,
// once per instance a commit changes) makes one string, not the
// builder's few and a concatenation.
func (x Ident) AppendElement(b []byte) []byte {
	b = append(b, '/')
	b = append(b, x.s.Name...)
	if x.s.Kind != KindList {
		return b
	}
	for j, k := range x.s.Keys {
		b = append(b, '[')
		b = append(b, k.Name...)
		b = append(b, '=')
		// A number is appended as it is rendered, without a string of
		// it: a bulk commit's log record has a route table key each.
		switch n := x.key(j).x.(type) {
		case uint64:
			b = append(strconv.AppendUint(b, n, 10), ']')
			continue
		case int64:
			b = append(strconv.AppendInt(b, n, 10), ']')
			continue
		}
		v := x.key(j).String()
		for i := 0; i < len(v); i++ {
			if v[i] == ']' || v[i] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, v[i])
		}
		b = append(b, ']')
	}
	return b
}

func (x Ident) writeElement(b *strings.Builder) {
	b.WriteByte('/')
	b.WriteString(x.s.Name)
	if x.s.Kind != KindList {
		return
	}
	for j, k := range x.s.Keys {
		b.WriteByte('[')
		b.WriteString(k.Name)
		b.WriteByte('=')
		writeEscapedKey(b, x.key(j).String())
		b.WriteByte(']')
	}
}

// Resolve returns the instance x names in this version of the tree, or
// nil when it is not there (a list entry deleted, or created again as a
// new identity).
func (t *Tree) Resolve(x Ident) *Inst {
	if x.IsZero() {
		return nil
	}
	chain := make([]Ident, 0, 8)
	for p := x; p.s.Parent != nil; p = p.Parent() {
		chain = append(chain, p)
	}
	in := t.root
	for i := len(chain) - 1; i >= 0 && in != nil; i-- {
		p := chain[i]
		switch p.s.Kind {
		case KindContainer:
			in = in.subs()[p.s.slot]
		case KindList:
			e := in.lists()[p.s.slot].get(keyString(p.Keys()))
			if e != nil && e.id != p.id {
				e = nil
			}
			in = e
		default:
			return nil
		}
	}
	return in
}
