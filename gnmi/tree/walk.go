package tree

import (
	"fmt"
	"math/bits"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// MaxPathElems is the most elements a path pattern may have once runs of
// "..." are collapsed into one. Kedge's deepest leaf is ten elements
// down; the limit leaves room for wildcards while bounding the state a
// walk carries per instance to one machine word.
const MaxPathElems = 32

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

// Pattern is a compiled path that may hold "*" (any one element), "..."
// (any number of elements, none included) and wildcard or omitted list
// keys. It is matched as an automaton whose states are the pattern's
// positions, so however many wildcards it holds, matching costs one pass
// over the tree (or over a path), never one pass per way of splitting
// it between the wildcards.
type Pattern struct {
	elems []patElem
	raw   []*gpb.PathElem // collapsed, as given
	final uint64          // the state bit of a complete match
}

type patKind uint8

const (
	patName patKind = iota
	patAny          // "*"
	patDeep         // "..."
)

type patElem struct {
	kind   patKind
	name   string // without module qualifier
	module string // the qualifier given, if any
	keys   map[string]string
}

// CompilePattern collapses runs of "...", enforces MaxPathElems and
// checks the pattern against the schema: every named element must exist
// where the pattern can reach, and keys must belong to the list they are
// given for and parse as its key types.
func CompilePattern(s *Schema, elems []*gpb.PathElem) (*Pattern, error) {
	p, err := compile(elems)
	if err != nil {
		return nil, err
	}
	if err := p.check(s); err != nil {
		return nil, err
	}
	return p, nil
}

func compile(elems []*gpb.PathElem) (*Pattern, error) {
	p := &Pattern{}
	for _, e := range elems {
		if e.GetName() == "..." && len(p.raw) > 0 && p.raw[len(p.raw)-1].GetName() == "..." {
			continue
		}
		p.raw = append(p.raw, e)
	}
	if len(p.raw) > MaxPathElems {
		return nil, newErr(ErrBadPath, renderElems(p.raw[:MaxPathElems+1])+"/…",
			fmt.Sprintf("the path has %d elements (runs of ... counted once); at most %d are allowed", len(p.raw), MaxPathElems))
	}
	p.elems = make([]patElem, len(p.raw))
	for i, e := range p.raw {
		pe := patElem{keys: e.GetKey()}
		switch name := e.GetName(); name {
		case "*":
			pe.kind = patAny
		case "...":
			pe.kind, pe.keys = patDeep, nil
		default:
			pe.name = name
			if j := strings.IndexByte(name, ':'); j >= 0 {
				pe.module, pe.name = name[:j], name[j+1:]
			}
		}
		p.elems[i] = pe
	}
	p.final = 1 << len(p.elems)
	return p, nil
}

// Elems returns the pattern's elements with runs of "..." collapsed.
func (p *Pattern) Elems() []*gpb.PathElem { return p.raw }

// names reports whether element e can stand for schema node n, keys
// aside.
func (e *patElem) names(n *Node) bool {
	switch e.kind {
	case patAny:
		return true
	case patName:
		return e.name == n.Name && (e.module == "" || e.module == n.Module)
	}
	return false
}

// closure adds, for every "..." reached, the position after it (the
// "..." standing for no element at all).
func (p *Pattern) closure(s uint64) uint64 {
	for rest := s; rest != 0; {
		i := bits.TrailingZeros64(rest)
		rest &^= 1 << i
		if i < len(p.elems) && p.elems[i].kind == patDeep && s&(1<<(i+1)) == 0 {
			s |= 1 << (i + 1)
			rest |= 1 << (i + 1)
		}
	}
	return s
}

// step returns the states after one element named by schema node n (a
// list entry ent, when n is a list and ent is known, must also match the
// keys).
func (p *Pattern) step(s uint64, n *Node, ent *Inst) uint64 {
	var out uint64
	for rest := s &^ p.final; rest != 0; {
		i := bits.TrailingZeros64(rest)
		rest &^= 1 << i
		e := &p.elems[i]
		switch {
		case e.kind == patDeep:
			out |= 1 << i
		case e.names(n) && (ent == nil || keysMatch(ent, e.keys)):
			out |= 1 << (i + 1)
		}
	}
	return p.closure(out)
}

// leaf reports whether a leaf n of an instance in states s completes the
// pattern.
func (p *Pattern) leaf(s uint64, n *Node) bool {
	i := len(p.elems) - 1
	return i >= 0 && s&(1<<i) != 0 && p.elems[i].names(n)
}

// exact returns the key of the one entry of list n that states s can
// select, when every position that can take an entry of n names all its
// keys without wildcards; ok is false when entries must be scanned.
func (p *Pattern) exact(s uint64, n *Node) (key string, ok bool) {
	for rest := s &^ p.final; rest != 0; {
		i := bits.TrailingZeros64(rest)
		rest &^= 1 << i
		e := &p.elems[i]
		switch {
		case e.kind != patName:
			return "", false
		case !e.names(n):
			continue
		}
		keys, full := exactKeys(n, e.keys)
		if !full {
			return "", false
		}
		k := keyString(keys)
		if ok && k != key {
			return "", false
		}
		key, ok = k, true
	}
	return key, ok
}

// Prefixes reports whether the pattern selects path or one of its
// ancestors, so that a subscription to a container covers every leaf
// below it. path's names carry no module qualifiers (as rendered from
// the tree).
func (p *Pattern) Prefixes(path []*gpb.PathElem) bool {
	s := p.closure(1)
	for _, pe := range path {
		if s&p.final != 0 {
			return true
		}
		var out uint64
		for rest := s; rest != 0; {
			i := bits.TrailingZeros64(rest)
			rest &^= 1 << i
			e := &p.elems[i]
			switch {
			case e.kind == patDeep:
				out |= 1 << i
			case (e.kind == patAny || e.name == pe.GetName()) && keysGiven(pe.GetKey(), e.keys):
				out |= 1 << (i + 1)
			}
		}
		if s = p.closure(out); s == 0 {
			return false
		}
	}
	return s&p.final != 0
}

func keysGiven(have, want map[string]string) bool {
	for k, v := range want {
		if v != "*" && have[k] != v {
			return false
		}
	}
	return true
}

// check validates the pattern against the schema in one pass over it:
// the schema nodes each position can reach are the same automaton run
// over schema nodes instead of data.
func (p *Pattern) check(s *Schema) error {
	type fault struct {
		err error
		ok  bool // some node at this position accepted the element
	}
	faults := make([]fault, len(p.elems))
	matched := make([]bool, len(p.elems))
	reached := make([]*Node, len(p.elems)) // a node from which the position was tried
	var visit func(n *Node, st uint64)
	visit = func(n *Node, st uint64) {
		for rest := st &^ p.final; rest != 0; {
			i := bits.TrailingZeros64(rest)
			rest &^= 1 << i
			if reached[i] == nil {
				reached[i] = n
			}
		}
		for _, c := range n.Children {
			for rest := st &^ p.final; rest != 0; {
				i := bits.TrailingZeros64(rest)
				rest &^= 1 << i
				e := &p.elems[i]
				if !e.names(c) {
					continue
				}
				matched[i] = true
				if err := keysFit(c, e); err == nil {
					faults[i].ok = true
				} else if e.kind == patName && faults[i].err == nil {
					faults[i].err = err
				}
			}
			if c.Kind == KindLeaf || c.Kind == KindLeafList {
				continue
			}
			if next := p.step(st, c, nil); next&^p.final != 0 {
				visit(c, next)
			}
		}
	}
	visit(s.Root, p.closure(1))
	for i := range p.elems {
		e := &p.elems[i]
		if e.kind != patName {
			continue
		}
		at := renderElems(p.raw[:i+1])
		if !matched[i] {
			reason := "no such node"
			if n := reached[i]; n != nil {
				if _, err := childNode(n, p.raw[i].GetName()); err != nil {
					reason = err.Error()
				}
			}
			return newErr(ErrUnknownPath, at, reason)
		}
		if !faults[i].ok {
			if f, ok := faults[i].err.(*Error); ok {
				f.Path = at
			}
			return faults[i].err
		}
	}
	return nil
}

// keysFit checks the keys an element gives against schema node n.
func keysFit(n *Node, e *patElem) error {
	if len(e.keys) == 0 {
		return nil
	}
	if n.Kind != KindList {
		return newErr(ErrBadPath, "", n.Name+" is not a list and takes no keys")
	}
	for k, v := range e.keys {
		kn := n.byName[k]
		if kn == nil || !isKey(n, kn) {
			return newErr(ErrBadPath, "", "list "+n.Name+" has no key "+k)
		}
		if v != "*" {
			if _, err := kn.Type.ParseText(v); err != nil {
				return newErr(ErrBadValue, "", "key "+k+": "+err.Error())
			}
		}
	}
	return nil
}

// CheckPath validates a possibly wildcarded path against the schema.
func CheckPath(s *Schema, elems []*gpb.PathElem) error {
	_, err := CompilePattern(s, elems)
	return err
}

// WalkOpts bound a walk.
type WalkOpts struct {
	// Visit, when set, is called every 256 instances the walk visits,
	// with the number visited so far; an error it returns ends the walk
	// with that error. A reader checks its deadline and budget with it.
	Visit func(visited int) error
}

// Walk calls fn for every node the path selects. Names may be "*" (any
// child) or "..." (any depth); list keys may be "*" or omitted (any
// entry). An unknown name or an unparsable key is an error; a valid path
// that selects nothing calls fn zero times. Each node is selected at most
// once, and nothing below a selected instance is selected again (it is
// part of that match already), so the matches never overlap.
func (t *Tree) Walk(elems []*gpb.PathElem, fn func(Match) error) error {
	return t.WalkWith(elems, WalkOpts{}, fn)
}

// WalkWith is Walk with bounds.
func (t *Tree) WalkWith(elems []*gpb.PathElem, o WalkOpts, fn func(Match) error) error {
	p, err := CompilePattern(t.schema, elems)
	if err != nil {
		return err
	}
	return t.WalkPattern(p, o, fn)
}

// WalkPattern is Walk with a compiled pattern.
func (t *Tree) WalkPattern(p *Pattern, o WalkOpts, fn func(Match) error) error {
	w := walker{p: p, o: o, fn: fn}
	return w.inst(t.root, p.closure(1))
}

type walker struct {
	p       *Pattern
	o       WalkOpts
	fn      func(Match) error
	visited int
}

func (w *walker) inst(in *Inst, s uint64) error {
	w.visited++
	if w.o.Visit != nil && w.visited%256 == 0 {
		if err := w.o.Visit(w.visited); err != nil {
			return err
		}
	}
	if s&w.p.final != 0 {
		if in.isEmpty(nil) {
			return nil
		}
		return w.fn(Match{In: in})
	}
	for _, ch := range in.s.Children {
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if in.val(ch.slot).IsSet() && w.p.leaf(s, ch) {
				if err := w.fn(Match{In: in, Node: ch}); err != nil {
					return err
				}
			}
		case KindContainer:
			if sub := in.subs()[ch.slot]; sub != nil {
				if next := w.p.step(s, ch, nil); next != 0 {
					if err := w.inst(sub, next); err != nil {
						return err
					}
				}
			}
		case KindList:
			l := in.lists()[ch.slot]
			if l.n == 0 || w.p.step(s, ch, nil) == 0 {
				continue
			}
			if k, ok := w.p.exact(s, ch); ok {
				if e := l.get(k); e != nil {
					if next := w.p.step(s, ch, e); next != 0 {
						if err := w.inst(e, next); err != nil {
							return err
						}
					}
				}
				continue
			}
			var err error
			l.each(func(_ string, e *Inst) bool {
				if next := w.p.step(s, ch, e); next != 0 {
					err = w.inst(e, next)
				}
				return err == nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// exactKeys returns the parsed keys when keys names every key of list n
// without wildcards, so the lookup is a map access rather than a scan.
func exactKeys(n *Node, given map[string]string) ([]Value, bool) {
	if len(given) != len(n.Keys) {
		return nil, false
	}
	keys := make([]Value, len(n.Keys))
	for i, k := range n.Keys {
		s, ok := given[k.Name]
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

// entryAt reads the entry of list n below in that a path element's keys
// name, as exactKeys and a lookup of keyString would: exact says the keys
// were given exactly (every key, a valid value); ent is nil when the entry
// is absent, and keys then holds the parsed keys. A single key given as
// the text an entry holds is looked up first without being parsed, as that
// entry's key was when it was made (a status write to each of 100,000
// existing gRIBI entries); its keys are not returned.
func entryAt(in *Inst, n *Node, given map[string]string) (ent *Inst, k string, keys []Value, exact bool) {
	l := in.lists()[n.slot]
	raw, tried := "", false
	if len(n.Keys) == 1 && len(given) == 1 {
		if s, ok := given[n.Keys[0].Name]; ok && s != "*" {
			if ent := l.get(s); ent != nil {
				return ent, s, nil, true
			}
			raw, tried = s, true
		}
	}
	keys, exact = exactKeys(n, given)
	if !exact {
		return nil, "", nil, false
	}
	k = keyString(keys)
	if tried && k == raw {
		return nil, k, keys, true // looked up already
	}
	return l.get(k), k, keys, true
}

func keysMatch(ent *Inst, given map[string]string) bool {
	for i, k := range ent.s.Keys {
		s, ok := given[k.Name]
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
	for _, sub := range in.subs() {
		if sub != nil {
			if err := eachInst(sub, fn); err != nil {
				return err
			}
		}
	}
	for _, l := range in.lists() {
		var err error
		l.each(func(_ string, ent *Inst) bool {
			err = eachInst(ent, fn)
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Leaves calls fn for every set leaf at or below the match whose schema
// node keep accepts (nil keeps all).
func (m Match) Leaves(keep func(*Node) bool, fn func(in *Inst, n *Node, v Value) error) error {
	if m.Node != nil {
		if keep == nil || keep(m.Node) {
			return fn(m.In, m.Node, m.In.val(m.Node.slot))
		}
		return nil
	}
	return eachInst(m.In, func(in *Inst) error {
		for _, ch := range in.s.Children {
			if ch.Kind != KindLeaf && ch.Kind != KindLeafList {
				continue
			}
			if v := in.val(ch.slot); v.IsSet() && (keep == nil || keep(ch)) {
				if err := fn(in, ch, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
