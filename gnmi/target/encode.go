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

// each calls fn with the updates of one match: one per leaf (PROTO, or a
// leaf match), or one for the whole match (JSON encodings). leaf is
// called for every leaf before it is encoded; an error from it or from
// fn ends the encoding with that error.
func (e encoder) each(m tree.Match, leaf func() error, fn func(*gpb.Update) error) error {
	limit := e.keep
	if e.depth > 0 {
		limit = e.depthFilter(m)
	}
	if e.enc == gpb.Encoding_PROTO || m.Node != nil {
		return eachLeaf(m, limit, func(path []*gpb.PathElem, n *tree.Node, v tree.Value) error {
			if err := leaf(); err != nil {
				return err
			}
			return fn(&gpb.Update{Path: &gpb.Path{Elem: path}, Val: e.leafValue(n, v)})
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
	return fn(&gpb.Update{Path: &gpb.Path{Elem: m.Elems()}, Val: tv})
}

// eachLeaf calls fn for every leaf of a match that keep accepts, with the
// leaf's full path. The leaves of one instance share the path elements
// of the instance (messages are read only), so a subtree of 100,000
// routes costs one element per leaf, not one per level per leaf.
func eachLeaf(m tree.Match, keep func(*tree.Node) bool, fn func(path []*gpb.PathElem, n *tree.Node, v tree.Value) error) error {
	var last *tree.Inst
	var base []*gpb.PathElem
	return m.Leaves(keep, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
		if in != last {
			last, base = in, in.Elems()
		}
		path := make([]*gpb.PathElem, len(base)+1)
		copy(path, base)
		path[len(base)] = &gpb.PathElem{Name: n.Name}
		return fn(path, n, v)
	})
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
