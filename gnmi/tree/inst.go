package tree

import (
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Inst is one instance of a container or a list entry. Its schema, parent
// and keys never change after creation, so change-feed consumers may read
// them (to render paths) without the store's lock; vals, subs and lists
// belong to the store's writer.
type Inst struct {
	s      *Node
	parent *Inst
	vals   []Value
	subs   []*Inst
	lists  []*List
	// mark is the id of the last transaction that touched this instance;
	// comparing ids replaces a per-transaction set on the hot path.
	mark uint64
	// dead marks a list entry removed from its list. Its key leaves keep
	// their values so that changes already published can still render
	// their paths; everything else reads it as empty.
	dead bool
}

// List holds the entries of one list under one parent instance.
type List struct {
	s *Node
	m map[string]*Inst
}

// Schema returns the instance's schema node (a container or a list).
func (in *Inst) Schema() *Node { return in.s }

// Parent returns the enclosing instance, nil for the root.
func (in *Inst) Parent() *Inst { return in.parent }

// Stamp identifies the last transaction that wrote one of the instance's
// own leaves (not its children's). While the same *Inst keeps the same
// stamp its leaf values are unchanged, so a consumer may cache what it
// derived from them; a rolled-back write changes the stamp but not the
// values, which only costs that consumer a recomputation. Read it under
// the store's lock, like the values.
func (in *Inst) Stamp() uint64 { return in.mark }

// Keys returns a list entry's key values in key order.
func (in *Inst) Keys() []Value {
	keys := make([]Value, len(in.s.Keys))
	for i, k := range in.s.Keys {
		keys[i] = in.vals[k.slot]
	}
	return keys
}

// key returns the entry's i-th key value.
func (in *Inst) key(i int) Value { return in.vals[in.s.Keys[i].slot] }

// keyStr returns the entry's map key in its list.
func (in *Inst) keyStr() string {
	if len(in.s.Keys) == 1 {
		return in.key(0).String()
	}
	return keyString(in.Keys())
}

// Leaf returns the value of the leaf or leaf-list child n (zero if unset).
// Callers must hold the store's read lock.
func (in *Inst) Leaf(n *Node) Value { return in.vals[n.slot] }

// Get returns the value of the named leaf child (zero if unset or unknown).
func (in *Inst) Get(name string) Value {
	n := in.s.byName[name]
	if n == nil || (n.Kind != KindLeaf && n.Kind != KindLeafList) {
		return Value{}
	}
	return in.vals[n.slot]
}

// Sub returns the named container child, or nil if it holds nothing yet.
func (in *Inst) Sub(name string) *Inst {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindContainer {
		return nil
	}
	return in.subs[n.slot]
}

// Removed reports whether a list entry has been deleted from its list
// (a change feed consumer may hold one).
func (in *Inst) Removed() bool { return in.dead }

// SubAt is Sub by schema node, for loops over many entries: n must be a
// container child of the instance's schema node (from Node.Child).
func (in *Inst) SubAt(n *Node) *Inst { return in.subs[n.slot] }

// Entries calls fn for each entry of the named list child, in no
// particular order, until fn returns false.
func (in *Inst) Entries(name string, fn func(*Inst) bool) {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindList || in.lists[n.slot] == nil {
		return
	}
	for _, e := range in.lists[n.slot].m {
		if !fn(e) {
			return
		}
	}
}

// Len returns the number of entries in the named list child.
func (in *Inst) Len(name string) int {
	n := in.s.byName[name]
	if n == nil || n.Kind != KindList || in.lists[n.slot] == nil {
		return 0
	}
	return len(in.lists[n.slot].m)
}

func newInst(s *Node, parent *Inst) *Inst {
	in := &Inst{s: s, parent: parent}
	if s.nvals > 0 {
		in.vals = make([]Value, s.nvals)
	}
	if s.nsubs > 0 {
		in.subs = make([]*Inst, s.nsubs)
	}
	if s.nlists > 0 {
		in.lists = make([]*List, s.nlists)
	}
	return in
}

// keyString is the map key of a list entry: its key values' text joined
// by NUL, which no key value contains once validated against its type.
func keyString(keys []Value) string {
	if len(keys) == 1 {
		return keys[0].String()
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.String()
	}
	return strings.Join(parts, "\x00")
}

// Elems returns the gNMI path elements from the root to in.
func (in *Inst) Elems() []*gpb.PathElem {
	depth := 0
	for p := in; p.parent != nil; p = p.parent {
		depth++
	}
	elems := make([]*gpb.PathElem, depth)
	for p := in; p.parent != nil; p = p.parent {
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

// PathString renders in's data path in gNMI string form, e.g.
// /kedge/routes/route[prefix=10.0.0.0/8][table=254].
func (in *Inst) PathString() string {
	var chain []*Inst
	for p := in; p.parent != nil; p = p.parent {
		chain = append(chain, p)
	}
	if len(chain) == 0 {
		return "/"
	}
	var b strings.Builder
	for i := len(chain) - 1; i >= 0; i-- {
		chain[i].writeElement(&b)
	}
	return b.String()
}

// writeElement writes in's own path element: "/name" and its keys.
func (in *Inst) writeElement(b *strings.Builder) {
	b.WriteByte('/')
	b.WriteString(in.s.Name)
	for j, k := range in.s.Keys {
		b.WriteByte('[')
		b.WriteString(k.Name)
		b.WriteByte('=')
		writeEscapedKey(b, in.key(j).String())
		b.WriteByte(']')
	}
}

func writeEscapedKey(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ']' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
}

// isEmpty reports whether in holds no leaf values and no entries below it,
// considering only nodes that keep passes.
func (in *Inst) isEmpty(keep func(*Node) bool) bool {
	for _, ch := range in.s.Children {
		if keep != nil && !keep(ch) && ch.Kind != KindContainer && ch.Kind != KindList {
			continue
		}
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if in.vals[ch.slot].IsSet() {
				return false
			}
		case KindContainer:
			if sub := in.subs[ch.slot]; sub != nil && !sub.isEmpty(keep) {
				return false
			}
		case KindList:
			if l := in.lists[ch.slot]; l != nil {
				for _, e := range l.m {
					if !e.isEmpty(keep) {
						return false
					}
				}
			}
		}
	}
	return true
}

// Element renders in's own path element ("/name" or "/name[k=v]…"), so
// that callers can build paths from a parent's rendered path.
func (in *Inst) Element() string {
	var b strings.Builder
	in.writeElement(&b)
	return b.String()
}
