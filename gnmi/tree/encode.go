package tree

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Encoding options for JSON output.
type EncodeOpts struct {
	// IETF selects RFC 7951: module-qualified top-level member names and
	// 64-bit integers as strings. Otherwise plain OpenConfig JSON.
	IETF bool
	// Keep filters leaves (gNMI DataType); nil keeps all.
	Keep func(*Node) bool
	// Each, when set, is called before each leaf is written; returning
	// false abandons the encoding (JSON then reports ok false). A reader
	// counts its budget and checks its deadline with it.
	Each func() bool
}

// encoding is one JSON encoding in progress.
type encoding struct {
	EncodeOpts
	b       *bytes.Buffer
	stopped bool
}

// leaf reports whether the next leaf may be written.
func (e *encoding) leaf() bool {
	if e.Each != nil && !e.stopped && !e.Each() {
		e.stopped = true
	}
	return !e.stopped
}

// JSON encodes the match as a JSON value: a scalar or array for a leaf or
// leaf-list, an object for an instance. ok is false when nothing under the
// match passes the filter.
func (m Match) JSON(o EncodeOpts) ([]byte, bool) {
	var b bytes.Buffer
	if m.Node != nil {
		if o.Keep != nil && !o.Keep(m.Node) || o.Each != nil && !o.Each() {
			return nil, false
		}
		writeValue(&b, m.Node, m.In.val(m.Node.slot), o.IETF)
		return b.Bytes(), true
	}
	e := &encoding{EncodeOpts: o, b: &b}
	if !e.inst(m.In, true) || e.stopped {
		return nil, false
	}
	return b.Bytes(), true
}

// inst writes in as an object; top marks the top-level object, whose
// member names RFC 7951 qualifies with their module.
func (e *encoding) inst(in *Inst, top bool) bool {
	b, o := e.b, &e.EncodeOpts
	start := b.Len()
	b.WriteByte('{')
	n := 0
	member := func(ch *Node) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteByte('"')
		if o.IETF && (top || ch.Module != in.s.Module) && ch.Module != "" {
			b.WriteString(ch.Module)
			b.WriteByte(':')
		}
		b.WriteString(ch.Name)
		b.WriteString(`":`)
	}
	for _, ch := range in.s.Children {
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			v := in.val(ch.slot)
			if !v.IsSet() {
				continue
			}
			_, key := keyValue(in, ch)
			if o.Keep != nil && !o.Keep(ch) && !(key && in.s.Kind == KindList) {
				continue
			}
			if !e.leaf() {
				return false
			}
			member(ch)
			writeValue(b, ch, v, o.IETF)
		case KindContainer:
			sub := in.subs()[ch.slot]
			if sub == nil {
				continue
			}
			mark := b.Len()
			member(ch)
			if !e.inst(sub, false) {
				b.Truncate(mark)
				n--
			}
		case KindList:
			l := in.lists()[ch.slot]
			if l.n == 0 {
				continue
			}
			mark := b.Len()
			member(ch)
			if !e.list(l) {
				b.Truncate(mark)
				n--
			}
		}
	}
	if e.stopped || n == 0 || (in.s.Kind == KindList && !hasKept(in, *o)) {
		b.Truncate(start)
		return false
	}
	b.WriteByte('}')
	return true
}

// hasKept reports whether an entry holds anything the filter keeps beyond
// its keys (an entry with only keys shows in CONFIG but not in STATE).
func hasKept(in *Inst, o EncodeOpts) bool {
	if o.Keep == nil {
		return true
	}
	return anyKept(in, o.Keep)
}

// anyKept reports whether a kept leaf is set at or below entry in, other
// than the entry's own keys: an operational entry (keys in state only)
// must not show up in a CONFIG read.
func anyKept(in *Inst, keep func(*Node) bool) bool {
	found := false
	_ = eachInst(in, func(x *Inst) error {
		for _, ch := range x.s.Children {
			if x == in && isKey(in.s, ch) {
				continue
			}
			if (ch.Kind == KindLeaf || ch.Kind == KindLeafList) && x.val(ch.slot).IsSet() && keep(ch) {
				found = true
				return errStop
			}
		}
		return nil
	})
	return found
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

func (e *encoding) list(l entries) bool {
	b := e.b
	b.WriteByte('[')
	n := 0
	for _, ent := range sortedEntries(l) {
		mark := b.Len()
		if n > 0 {
			b.WriteByte(',')
		}
		if e.inst(ent.in, false) {
			n++
		} else {
			b.Truncate(mark)
		}
		if e.stopped {
			return false
		}
	}
	if n == 0 {
		return false
	}
	b.WriteByte(']')
	return true
}

// sortedEntries returns a list's entries in key order, so that equal
// trees encode to equal JSON.
func sortedEntries(l entries) []hentry {
	es := make([]hentry, 0, l.n)
	l.each(func(k string, in *Inst) bool {
		es = append(es, hentry{key: k, in: in})
		return true
	})
	slices.SortFunc(es, func(a, b hentry) int { return strings.Compare(a.key, b.key) })
	return es
}

func writeValue(b *bytes.Buffer, n *Node, v Value, ietf bool) {
	if v.IsList() {
		b.WriteByte('[')
		for i, e := range v.Elems() {
			if i > 0 {
				b.WriteByte(',')
			}
			writeScalar(b, n, e, ietf)
		}
		b.WriteByte(']')
		return
	}
	writeScalar(b, n, v, ietf)
}

func writeScalar(b *bytes.Buffer, n *Node, v Value, ietf bool) {
	switch x := v.x.(type) {
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case uint64, int64:
		if n.Type.jsonNumber(ietf) {
			b.WriteString(v.String())
		} else {
			b.WriteByte('"')
			b.WriteString(v.String())
			b.WriteByte('"')
		}
	case string:
		q, _ := json.Marshal(x)
		b.Write(q)
	}
}

// Typed converts a leaf value to a scalar gNMI TypedValue (PROTO encoding).
func Typed(v Value) *gpb.TypedValue {
	switch x := v.x.(type) {
	case uint64:
		return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: x}}
	case int64:
		return &gpb.TypedValue{Value: &gpb.TypedValue_IntVal{IntVal: x}}
	case bool:
		return &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: x}}
	case []Value:
		el := make([]*gpb.TypedValue, 0, len(x))
		for _, e := range x {
			el = append(el, Typed(e))
		}
		return &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: el}}}
	}
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v.Str()}}
}

// LeafJSON encodes one leaf or leaf-list value as JSON text.
func (Match) LeafJSON(n *Node, v Value, ietf bool) ([]byte, bool) {
	var b bytes.Buffer
	writeValue(&b, n, v, ietf)
	return b.Bytes(), true
}
