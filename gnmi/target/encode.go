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

func (e encoder) updates(m tree.Match) []*gpb.Update {
	limit := e.keep
	if e.depth > 0 {
		limit = e.depthFilter(m)
	}
	if e.enc == gpb.Encoding_PROTO || m.Node != nil {
		var out []*gpb.Update
		_ = m.Leaves(limit, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
			out = append(out, &gpb.Update{Path: &gpb.Path{Elem: append(in.Elems(), &gpb.PathElem{Name: n.Name})}, Val: e.leafValue(n, v)})
			return nil
		})
		return out
	}
	js, ok := m.JSON(tree.EncodeOpts{IETF: e.enc == gpb.Encoding_JSON_IETF, Keep: limit})
	if !ok {
		return nil
	}
	var tv *gpb.TypedValue
	if e.enc == gpb.Encoding_JSON_IETF {
		tv = &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}}
	} else {
		tv = &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: js}}
	}
	return []*gpb.Update{{Path: &gpb.Path{Elem: m.Elems()}, Val: tv}}
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
