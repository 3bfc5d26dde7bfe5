package target

import (
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// encoder turns tree matches into gNMI updates in the requested encoding:
// JSON encodings send one update per match (a subtree as one object),
// PROTO one scalar update per leaf.
type encoder struct {
	enc   gpb.Encoding
	keep  func(*tree.Node) bool
	depth uint32 // 0: unlimited
}

// updateSink takes the updates of a read: a leaf's from its instance,
// node and value (built as a message or written as wire bytes), a whole
// match's (JSON encodings) as a message.
type updateSink interface {
	leaf(in *tree.Inst, n *tree.Node, v tree.Value) error
	update(u *gpb.Update) error
}

// each gives sink the updates of one match: one per leaf (PROTO, or a
// leaf match), or one for the whole match (JSON encodings). leaf is
// called for every leaf before it is encoded; an error from it or from
// the sink ends the encoding with that error.
func (e encoder) each(m tree.Match, leaf func() error, sink updateSink) error {
	limit := e.keep
	if e.depth > 0 {
		limit = e.depthFilter(m)
	}
	if e.enc == gpb.Encoding_PROTO || m.Node != nil {
		return m.Leaves(limit, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
			if err := leaf(); err != nil {
				return err
			}
			return sink.leaf(in, n, v)
		})
	}
	var stop error
	js, ok := m.JSON(tree.EncodeOpts{IETF: e.enc == gpb.Encoding_JSON_IETF, Keep: limit, Each: func() bool {
		stop = leaf()
		return stop == nil
	}})
	if stop != nil {
		return stop
	}
	if !ok {
		return nil
	}
	var tv *gpb.TypedValue
	if e.enc == gpb.Encoding_JSON_IETF {
		tv = &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}}
	} else {
		tv = &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: js}}
	}
	return sink.update(&gpb.Update{Path: &gpb.Path{Elem: m.Elems()}, Val: tv})
}

// msgSink builds a read's updates as messages, path elements shared
// through elems.
type msgSink struct {
	enc   encoder
	elems *elemCache
	last  *tree.Inst
	base  []*gpb.PathElem
	add   func(*gpb.Update)
}

func (s *msgSink) leaf(in *tree.Inst, n *tree.Node, v tree.Value) error {
	if in != s.last {
		s.last, s.base = in, s.elems.of(in.Ident())
	}
	path := make([]*gpb.PathElem, len(s.base)+1)
	copy(path, s.base)
	path[len(s.base)] = &gpb.PathElem{Name: n.Name}
	s.add(&gpb.Update{Path: &gpb.Path{Elem: path}, Val: s.enc.leafValue(n, v)})
	return nil
}

func (s *msgSink) update(u *gpb.Update) error {
	s.add(u)
	return nil
}

// eachLeaf calls fn for every leaf of a match that keep accepts, with the
// leaf's full path, its elements shared through elems.
func eachLeaf(m tree.Match, keep func(*tree.Node) bool, elems *elemCache, fn func(path []*gpb.PathElem, n *tree.Node, v tree.Value) error) error {
	var last *tree.Inst
	var base []*gpb.PathElem
	return m.Leaves(keep, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
		if in != last {
			last, base = in, elems.of(in.Ident())
		}
		path := make([]*gpb.PathElem, len(base)+1)
		copy(path, base)
		path[len(base)] = &gpb.PathElem{Name: n.Name}
		return fn(path, n, v)
	})
}

// elemCache shares path elements between the updates of one read:
// messages are read only, so every leaf below an instance points at the
// same elements for the instance and its ancestors. A walk goes depth
// first, so the path of the last instance is all that is worth keeping.
// Reading the public keys of 1,000 mesh peers rendered the path of every
// key's instance from the root, key maps included: half of what such a
// Get allocated.
type elemCache struct{ path []cachedElems }

type cachedElems struct {
	id    tree.Ident
	elems []*gpb.PathElem
}

// of returns the path elements from the root to the instance x names.
func (c *elemCache) of(x tree.Ident) []*gpb.PathElem {
	var buf [tree.MaxPathElems]tree.Ident
	chain := buf[:0] // x, its parent, ... up to a top-level instance
	for p := x; !p.Parent().IsZero() && len(chain) < len(buf); p = p.Parent() {
		chain = append(chain, p)
	}
	n := len(chain)
	if n == 0 {
		return nil
	}
	d := 0
	for d < n && d < len(c.path) && c.path[d].id == chain[n-1-d] {
		d++
	}
	c.path = c.path[:d]
	for ; d < n; d++ {
		id := chain[n-1-d]
		var up []*gpb.PathElem
		if d > 0 {
			up = c.path[d-1].elems
		}
		own := &gpb.PathElem{Name: id.Schema().Name}
		if keys := id.Keys(); len(keys) > 0 {
			own.Key = make(map[string]string, len(keys))
			for i, k := range id.Schema().Keys {
				own.Key[k.Name] = keys[i].String()
			}
		}
		e := make([]*gpb.PathElem, len(up)+1)
		copy(e, up)
		e[len(up)] = own
		c.path = append(c.path, cachedElems{id: id, elems: e})
	}
	return c.path[n-1].elems
}

// leafValue encodes one leaf: scalars for PROTO, scalar JSON otherwise.
func (e encoder) leafValue(n *tree.Node, v tree.Value) *gpb.TypedValue {
	if e.enc == gpb.Encoding_PROTO {
		return tree.Typed(v)
	}
	js, _ := tree.Match{}.LeafJSON(n, v, e.enc == gpb.Encoding_JSON_IETF)
	if e.enc == gpb.Encoding_JSON_IETF {
		return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}}
	}
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: js}}
}

// depthFilter keeps leaves at most depth schema levels below the match
// (the depth extension: 1 is the node and its direct children).
func (e encoder) depthFilter(m tree.Match) func(*tree.Node) bool {
	if m.Node != nil {
		return e.keep
	}
	top := m.In.Schema()
	max := int(e.depth)
	keep := e.keep
	return func(n *tree.Node) bool {
		if keep != nil && !keep(n) {
			return false
		}
		d := 0
		for p := n; p != nil && p != top; p = p.Parent {
			d++
		}
		return d <= max
	}
}
