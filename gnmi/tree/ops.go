package tree

import (
	"encoding/json"
	"fmt"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// locate resolves a concrete path for writing, creating containers and
// list entries on the way; what it returns belongs to the new version.
// Paths for messages are rendered only on error: locate runs once per
// operation and a bulk Set has 100,000 of them.
func (tx *Txn) locate(elems []*gpb.PathElem) (Target, error) {
	return tx.locateFrom(nil, elems)
}

// locateFrom is locate for a path whose first len(steps) elements
// existingLeaf has read to existing instances (steps): it opens those
// as locate would, without resolving their names and parsing their keys
// again, and goes on from there. A state writer's first status write to
// a route finds the route once, not twice, when its state container is
// still absent.
func (tx *Txn) locateFrom(steps []step, elems []*gpb.PathElem) (Target, error) {
	in := tx.root()
	for _, st := range steps {
		if st.n.Kind == KindContainer {
			in = tx.sub(in, st.n, false)
			continue
		}
		in = tx.existing(in, st.n, st.key)
		if !tx.state {
			tx.adoptOperational(in) // as entry does
		}
	}
	for i := len(steps); i < len(elems); i++ {
		e := elems[i]
		n, err := childNode(in.s, e.GetName())
		if err != nil {
			return Target{}, newErr(ErrUnknownPath, renderElems(elems[:i+1]), err.Error())
		}
		last := i == len(elems)-1
		switch n.Kind {
		case KindLeaf, KindLeafList:
			if !last {
				return Target{}, newErr(ErrUnknownPath, renderElems(elems[:i+1]), "a leaf has no children")
			}
			return Target{In: in, Node: n}, nil
		case KindContainer:
			if len(e.GetKey()) > 0 {
				return Target{}, newErr(ErrBadPath, renderElems(elems[:i+1]), "container "+n.Name+" takes no keys")
			}
			in = tx.sub(in, n, true)
		case KindList:
			if len(e.GetKey()) == 0 && last {
				return Target{In: in, Node: n}, nil
			}
			keys, err := parseKeys(n, e, elems[:i+1])
			if err != nil {
				return Target{}, err
			}
			ent, err := tx.entry(in, n, keys, true, elems[:i+1])
			if err != nil {
				return Target{}, err
			}
			in = ent
		}
	}
	return Target{In: in}, nil
}

// open returns the instance at elems, a path Lookup found, ready for
// writing.
func (tx *Txn) open(elems []*gpb.PathElem) *Inst {
	in := tx.root()
	for _, e := range elems {
		n, _ := childNode(in.s, e.GetName())
		switch n.Kind {
		case KindContainer:
			in = tx.sub(in, n, false)
		case KindList:
			keys, _ := parseKeys(n, e, nil)
			in = tx.existing(in, n, keyString(keys))
		}
	}
	return in
}

// Delete removes whatever the path names. Deleting data that does not
// exist is not an error (gNMI specification 3.4.6).
func (tx *Txn) Delete(elems []*gpb.PathElem) error {
	tgt, found, err := tx.t.Lookup(elems)
	if err != nil || !found {
		return err
	}
	parent := func() *Inst { return tx.open(elems[:len(elems)-1]) }
	switch {
	case tgt.Node == nil && tgt.In.s.Kind == KindList:
		if !tx.owns(tgt.In.s) {
			tx.clear(tgt.In, func() *Inst { return tx.open(elems) })
			return nil
		}
		tx.deleteEntry(parent(), tgt.In.s, tgt.In.keyStr())
	case tgt.Node == nil:
		tx.clear(tgt.In, func() *Inst { return tx.open(elems) })
	case tgt.Node.Kind == KindList:
		n := tgt.Node
		if !tx.owns(n) {
			var w *Inst
			tgt.In.lists()[n.slot].each(func(k string, e *Inst) bool {
				tx.clear(e, func() *Inst {
					if w == nil {
						w = parent()
					}
					return tx.existing(w, n, k)
				})
				return true
			})
			return nil
		}
		tx.empty(parent(), n)
	default:
		return tx.deleteLeaf(parent(), tgt.Node)
	}
	return nil
}

// Update merges val into the path (gNMI update).
func (tx *Txn) Update(elems []*gpb.PathElem, val *gpb.TypedValue) error {
	return tx.set(elems, val, false)
}

// Replace makes the path hold exactly val (gNMI replace): nodes under the
// path that this writer owns and val omits are removed.
func (tx *Txn) Replace(elems []*gpb.PathElem, val *gpb.TypedValue) error {
	return tx.set(elems, val, true)
}

// SetValue writes an already typed leaf value at a concrete path; the
// store uses it to replay its log.
func (tx *Txn) SetValue(elems []*gpb.PathElem, v Value) error {
	var buf [8]step
	in, n, steps, ok := tx.existingLeaf(elems, buf[:])
	if ok {
		return tx.writeExisting(in, n, steps, v)
	}
	tgt, err := tx.locateFrom(steps, elems)
	if err != nil {
		return err
	}
	at := renderElems(elems)
	if tgt.Node == nil || (tgt.Node.Kind != KindLeaf && tgt.Node.Kind != KindLeafList) {
		return newErr(ErrBadPath, at, "not a leaf")
	}
	return tx.setLeaf(tgt.In, tgt.Node, v)
}

// step is how to reach an instance from its parent: a container child,
// or the entry of a list child with a key.
type step struct {
	n   *Node
	key string
}

// existingLeaf walks a concrete path to a leaf without writing anything:
// when the leaf's instance exists it returns it (as the transaction sees
// it), the leaf's node and the steps from the root to the instance; ok is
// false otherwise (a path to create, a non-leaf, an error: locate
// handles those), and then steps lead as far down the path as instances
// exist (a container or entry absent, or the path's end), for
// locateFrom to go on from, or are empty when the path is not read so
// far (an error, keys not given exactly). Reading before writing keeps a
// write of an equal value from copying the path, and resolves the path
// once for both.
func (tx *Txn) existingLeaf(elems []*gpb.PathElem, buf []step) (in *Inst, n *Node, steps []step, ok bool) {
	in, steps = tx.t.root, buf[:0]
	for i, e := range elems {
		c, err := childNode(in.s, e.GetName())
		if err != nil {
			return nil, nil, nil, false
		}
		last := i == len(elems)-1
		switch c.Kind {
		case KindLeaf, KindLeafList:
			if !last || len(e.GetKey()) > 0 {
				return nil, nil, nil, false
			}
			return in, c, steps, true
		case KindContainer:
			if len(e.GetKey()) > 0 {
				return nil, nil, nil, false
			}
			if in.subs()[c.slot] == nil {
				return nil, nil, steps, false
			}
			in = in.subs()[c.slot]
			steps = append(steps, step{n: c})
		case KindList:
			ent, k, _, exact := entryAt(in, c, e.GetKey())
			if !exact {
				return nil, nil, nil, false
			}
			if ent == nil {
				return nil, nil, steps, false
			}
			in = ent
			steps = append(steps, step{n: c, key: k})
		}
	}
	return nil, nil, steps, false
}

// follow returns the instance the steps lead to, ready for writing.
func (tx *Txn) follow(steps []step) *Inst {
	in := tx.root()
	for _, st := range steps {
		if st.n.Kind == KindContainer {
			in = tx.sub(in, st.n, false)
		} else {
			in = tx.existing(in, st.n, st.key)
		}
	}
	return in
}

// writeExisting writes v to the leaf n of the instance the steps lead to
// (in, as read), copying the path only when the value changes.
func (tx *Txn) writeExisting(in *Inst, n *Node, steps []step, v Value) error {
	if tx.owns(n) && in.val(n.slot).Equal(v) {
		return nil
	}
	if !tx.owns(n) {
		return tx.setLeaf(in, n, v) // the refusal, naming the path
	}
	return tx.setLeaf(tx.follow(steps), n, v)
}

func (tx *Txn) set(elems []*gpb.PathElem, val *gpb.TypedValue, replace bool) error {
	if val == nil || val.GetValue() == nil {
		return newErr(ErrBadValue, renderElems(elems), "no value")
	}
	var buf [8]step
	in, n, steps, ok := tx.existingLeaf(elems, buf[:])
	if ok {
		v, err := decodeLeaf(n, val)
		if err != nil {
			return newErr(ErrBadValue, renderElems(elems), err.Error())
		}
		return tx.writeExisting(in, n, steps, v)
	}
	tgt, err := tx.locateFrom(steps, elems)
	if err != nil {
		return err
	}
	if n := tgt.Node; n != nil && (n.Kind == KindLeaf || n.Kind == KindLeafList) {
		v, err := decodeLeaf(n, val)
		if err != nil {
			return newErr(ErrBadValue, renderElems(elems), err.Error())
		}
		return tx.setLeaf(tgt.In, n, v)
	}
	x, err := tx.decodeJSON(val)
	if err != nil {
		return newErr(ErrBadValue, renderElems(elems), err.Error())
	}
	if tgt.Node != nil { // a whole list
		arr, ok := x.([]any)
		if !ok {
			if obj, isObj := x.(*jsonObject); isObj {
				// Some clients wrap the list: {"route": [...]}.
				if inner, ok2 := unwrapList(obj, tgt.Node); ok2 {
					arr, ok = inner, true
				}
			}
		}
		if !ok {
			return newErr(ErrBadValue, renderElems(elems), "a list takes a JSON array of entries")
		}
		return tx.mergeList(tgt.In, tgt.Node, arr, replace)
	}
	obj, ok := x.(*jsonObject)
	if !ok {
		return newErr(ErrBadValue, renderElems(elems), fmt.Sprintf("%s takes a JSON object", nodeName(tgt.In.s)))
	}
	return tx.merge(tgt.In, obj, replace, nil)
}

// unwrapList returns the entries of {"list": [...]}: an object with one
// member (given once or more), named after list n.
func unwrapList(obj *jsonObject, n *Node) ([]any, bool) {
	if obj.Len() == 0 {
		return nil, false
	}
	k := obj.m[0].name()
	for _, m := range obj.m[1:] {
		if m.name() != k {
			return nil, false
		}
	}
	if !nameIs(k, n) {
		return nil, false
	}
	arr, ok := obj.m[len(obj.m)-1].val.([]any)
	return arr, ok
}

// nameIs reports whether a JSON member name names node n, plain or
// module-qualified.
func nameIs(name string, n *Node) bool {
	if name == n.Name {
		return true
	}
	return len(name) == len(n.Module)+1+len(n.Name) && name[len(n.Module)] == ':' &&
		name[:len(n.Module)] == n.Module && name[len(n.Module)+1:] == n.Name
}

// decodeJSON decodes a container's or list's JSON value with the
// transaction's parser, which shares names and repeated values across
// the transaction's operations.
func (tx *Txn) decodeJSON(val *gpb.TypedValue) (any, error) {
	raw, err := jsonBytes(val)
	if err != nil {
		return nil, err
	}
	if tx.jp == nil {
		ns := tx.t.jsonNames
		if ns == nil {
			ns = &jsonNames{}
			tx.t.jsonNames = ns
		}
		tx.jp = &jsonParser{share: true, names: ns, splitMin: splitMinBytes}
	}
	return tx.jp.parse(raw)
}

func decodeJSON(val *gpb.TypedValue) (any, error) {
	raw, err := jsonBytes(val)
	if err != nil {
		return nil, err
	}
	return parseJSON(raw)
}

func jsonBytes(val *gpb.TypedValue) ([]byte, error) {
	var raw []byte
	switch v := val.GetValue().(type) {
	case *gpb.TypedValue_JsonIetfVal:
		raw = v.JsonIetfVal
	case *gpb.TypedValue_JsonVal:
		raw = v.JsonVal
	default:
		return nil, fmt.Errorf("a container or list takes a JSON or JSON_IETF value, not %T", val.GetValue())
	}
	return raw, nil
}

// decodeLeaf converts a gNMI TypedValue into a leaf or leaf-list value.
func decodeLeaf(n *Node, val *gpb.TypedValue) (Value, error) {
	t := n.Type
	if n.Kind == KindLeafList {
		var elems []*gpb.TypedValue
		switch v := val.GetValue().(type) {
		case *gpb.TypedValue_LeaflistVal:
			elems = v.LeaflistVal.GetElement()
		case *gpb.TypedValue_JsonIetfVal, *gpb.TypedValue_JsonVal:
			x, err := decodeJSON(val)
			if err != nil {
				return Value{}, err
			}
			arr, ok := x.([]any)
			if !ok {
				return Value{}, fmt.Errorf("leaf-list %s takes a JSON array", n.Name)
			}
			out := make([]Value, 0, len(arr))
			for _, a := range arr {
				v, err := t.ParseJSON(a)
				if err != nil {
					return Value{}, err
				}
				out = append(out, v)
			}
			return leafList(out)
		default:
			return Value{}, fmt.Errorf("leaf-list %s takes a leaflist_val or a JSON array, not %T", n.Name, val.GetValue())
		}
		out := make([]Value, 0, len(elems))
		for _, e := range elems {
			v, err := decodeScalar(t, e)
			if err != nil {
				return Value{}, err
			}
			out = append(out, v)
		}
		return leafList(out)
	}
	return decodeScalar(t, val)
}

// leafList builds a leaf-list value, refusing duplicates as YANG does for
// config leaf-lists.
func leafList(vs []Value) (Value, error) {
	seen := make(map[string]bool, len(vs))
	for _, v := range vs {
		s := v.String()
		if seen[s] {
			return Value{}, fmt.Errorf("duplicate leaf-list element %q", s)
		}
		seen[s] = true
	}
	return ListValue(vs), nil
}

func decodeScalar(t *Type, val *gpb.TypedValue) (Value, error) {
	switch v := val.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return t.ParseText(v.StringVal)
	case *gpb.TypedValue_AsciiVal:
		return t.ParseText(v.AsciiVal)
	case *gpb.TypedValue_UintVal:
		return t.CheckUint(v.UintVal)
	case *gpb.TypedValue_IntVal:
		return t.CheckInt(v.IntVal)
	case *gpb.TypedValue_BoolVal:
		return t.CheckBool(v.BoolVal)
	case *gpb.TypedValue_JsonIetfVal, *gpb.TypedValue_JsonVal:
		x, err := decodeJSON(val)
		if err != nil {
			return Value{}, err
		}
		if _, isArr := x.([]any); isArr {
			return Value{}, fmt.Errorf("a leaf takes a scalar, not a JSON array")
		}
		if _, isObj := x.(*jsonObject); isObj {
			return Value{}, fmt.Errorf("a leaf takes a scalar, not a JSON object")
		}
		return t.ParseJSON(x)
	case nil:
		return Value{}, fmt.Errorf("no value")
	}
	return Value{}, fmt.Errorf("%T is not a supported encoding for %s", val.GetValue(), t.base().describe())
}

// members checks a JSON object's member names against the schema,
// rejecting unknown members and members this writer may not write, and
// reports whether any name is module-qualified.
func (tx *Txn) members(in *Inst, obj *jsonObject) (qualified bool, err error) {
	for _, m := range obj.m {
		name := m.name()
		n, err := childNode(in.s, name)
		if err != nil {
			return false, newErr(ErrUnknownPath, childName(in, name), err.Error())
		}
		if name != n.Name {
			qualified = true
		}
		if (n.Kind == KindLeaf || n.Kind == KindLeafList) && !tx.owns(n) {
			if _, key := keyValue(in, n); !key {
				return false, tx.ownErr(n, childPath{in, n}.String())
			}
		}
		if n.Kind == KindList && !n.Config && !tx.state {
			return false, tx.ownErr(n, childPath{in, n}.String())
		}
	}
	return qualified, nil
}

func childName(in *Inst, name string) string {
	p := in.PathString()
	if p == "/" {
		return "/" + name
	}
	return p + "/" + name
}

// parseLeaf is n.Type.ParseJSON(x), remembered per leaf: a JSON string
// or number equal to the one last parsed for n gives the same value
// without checking it again (every route's device against the interface
// name pattern, its table against the key's range).
func (tx *Txn) parseLeaf(n *Node, x any) (Value, error) {
	switch x.(type) {
	case string, json.Number:
	default:
		return n.Type.ParseJSON(x)
	}
	if m := tx.memo(n); m.in == x {
		return m.v, nil
	}
	if k := n.keyOf; k != nil {
		// A key's config mirror given the text the key was just parsed
		// from (a route's prefix, again in its config): the key is a
		// leafref to this leaf, so its type parsed the text as this
		// leaf's type does.
		if m := tx.memo(k); m.in == x {
			return m.v, nil
		}
	}
	v, err := n.Type.ParseJSON(x)
	if err != nil {
		return v, err
	}
	m := tx.memo(n)
	m.in, m.v = x, v
	return v, nil
}

// shared returns the string value v of leaf n as the transaction last
// merged it into n when it is the same, so that a bulk Set's 100,000
// routes on one device hold one string; else it remembers v.
func (tx *Txn) shared(n *Node, v Value) Value {
	if _, ok := v.x.(string); !ok {
		return v
	}
	m := tx.memo(n)
	if m.last.IsSet() && m.last.Equal(v) {
		return m.last
	}
	m.last = v
	return v
}

// merge applies a decoded JSON object to an instance, in schema order so
// that changes come out deterministically. keys, for a list entry, are
// the entry's keys as mergeList decoded them from this same object: a
// key leaf given in it is not decoded twice.
func (tx *Txn) merge(in *Inst, obj *jsonObject, replace bool, keys []Value) error {
	p, err := tx.plan(in, obj)
	if err != nil {
		return err
	}
	for i, ch := range in.s.Children {
		var x any
		j := p.member[i]
		given := j >= 0
		if given {
			x = obj.m[j].val
		}
		cat := childPath{in, ch}
		switch ch.Kind {
		case KindLeaf, KindLeafList:
			if !given {
				if _, key := keyValue(in, ch); replace && tx.owns(ch) && !key {
					tx.setVal(in, ch, Value{})
				}
				continue
			}
			var v Value
			var err error
			if ch.Kind == KindLeafList {
				arr, ok := x.([]any)
				if !ok {
					return newErr(ErrBadValue, cat.String(), "a leaf-list takes a JSON array")
				}
				vs := make([]Value, 0, len(arr))
				for _, a := range arr {
					e, err := ch.Type.ParseJSON(a)
					if err != nil {
						return newErr(ErrBadValue, cat.String(), err.Error())
					}
					vs = append(vs, e)
				}
				v, err = leafList(vs)
			} else if k := keyIndex(in, ch, keys); k >= 0 {
				v = keys[k] // entryKeys decoded this same member
			} else {
				v, err = tx.parseLeaf(ch, x)
				v = tx.shared(ch, v)
			}
			if err != nil {
				return newErr(ErrBadValue, cat.String(), err.Error())
			}
			if err := tx.setLeaf(in, ch, v); err != nil {
				return err
			}
		case KindContainer:
			if !given {
				if replace {
					if sub := in.subs()[ch.slot]; sub != nil {
						tx.clear(sub, func() *Inst { return tx.sub(in, ch, false) })
					}
				}
				continue
			}
			o, ok := x.(*jsonObject)
			if !ok {
				return newErr(ErrBadValue, cat.String(), "a container takes a JSON object")
			}
			if err := tx.merge(tx.sub(in, ch, true), o, replace, nil); err != nil {
				return err
			}
		case KindList:
			if !given {
				if replace {
					tx.emptyList(in, ch)
				}
				continue
			}
			arr, ok := x.([]any)
			if !ok {
				return newErr(ErrBadValue, cat.String(), "a list takes a JSON array of entries")
			}
			if err := tx.mergeList(in, ch, arr, replace); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyIndex returns which of list entry in's keys leaf n is, when keys
// holds them; else -1.
func keyIndex(in *Inst, n *Node, keys []Value) int {
	if keys == nil || in.s.Kind != KindList {
		return -1
	}
	for i, k := range in.s.Keys {
		if k == n {
			return i
		}
	}
	return -1
}

// mergeList applies a JSON array of entries to list n under in.
func (tx *Txn) mergeList(in *Inst, n *Node, arr []any, replace bool) error {
	if tx.bulkMerge(in, n, arr, replace) {
		return nil
	}
	at := childPath{in, n}
	var keep map[string]bool
	if replace {
		keep = make(map[string]bool, len(arr))
	}
	keys := make([]Value, len(n.Keys)) // each entry's, in turn
	// An entry written makes about two instances (itself and the
	// container its keys mirror into, where its config goes): room for
	// them is made once rather than doubled up to.
	tx.reserveTouched(2 * len(arr))
	for i, a := range arr {
		obj, ok := a.(*jsonObject)
		if !ok {
			return newErr(ErrBadValue, fmt.Sprintf("%s[%d]", at, i), "a list entry is a JSON object")
		}
		err := tx.entryKeys(n, obj, keys)
		if err != nil {
			return newErr(ErrBadPath, fmt.Sprintf("%s[%d]", at, i), err.Error())
		}
		ent, err := tx.entry(in, n, keys, true, nil)
		if err != nil {
			return err
		}
		if keep != nil {
			k := keyString(keys)
			if keep[k] {
				return newErr(ErrBadValue, ent.PathString(), "duplicate list entry")
			}
			keep[k] = true
		}
		if err := tx.merge(ent, obj, replace, keys); err != nil {
			return err
		}
	}
	if replace && tx.owns(n) {
		var drop []string
		in.lists()[n.slot].each(func(k string, _ *Inst) bool {
			if !keep[k] {
				drop = append(drop, k)
			}
			return true
		})
		for _, k := range drop {
			tx.deleteEntry(in, n, k)
		}
	}
	return nil
}

// emptyList removes what this writer owns of list n under in (which the
// transaction owns): the entries themselves, or, for a list of the other
// kind, the leaves this writer owns in each entry.
func (tx *Txn) emptyList(in *Inst, n *Node) {
	l := in.lists()[n.slot]
	if l.n == 0 {
		return
	}
	if tx.owns(n) {
		tx.empty(in, n)
		return
	}
	l.each(func(k string, e *Inst) bool {
		tx.clear(e, func() *Inst { return tx.existing(in, n, k) })
		return true
	})
}

// entryKeys reads a JSON list entry's keys into keys, from the entry's
// key leaves or, failing that, from their config mirrors.
func (tx *Txn) entryKeys(n *Node, obj *jsonObject, keys []Value) error {
	for i, k := range n.Keys {
		x, ok := lookupMember(obj, k)
		if !ok && k.configKey != nil {
			if sub, ok2 := lookupMember(obj, k.configKey.Parent); ok2 {
				if so, ok3 := sub.(*jsonObject); ok3 {
					x, ok = lookupMember(so, k.configKey)
				}
			}
		}
		if !ok {
			return fmt.Errorf("list %s entry lacks key %q", n.Name, k.Name)
		}
		v, err := tx.parseLeaf(k, x)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.Name, err)
		}
		keys[i] = v
	}
	return nil
}

func lookupMember(obj *jsonObject, n *Node) (any, bool) {
	if x, ok := obj.get(n.Name); ok {
		return x, true
	}
	return obj.getQualified(n)
}

// ApplyRaw replays one logged leaf change at an instance path: a set
// creates what it needs; deleting a list entry's key leaf removes the
// entry; deletes under data that is already gone are no-ops. It skips
// the client-facing checks because the change was validated when it was
// first committed.
func (tx *Txn) ApplyRaw(instPath, leaf string, v Value) error {
	elems, err := tx.parseCached(instPath)
	if err != nil {
		return err
	}
	if !v.IsSet() {
		tgt, found, err := tx.t.Lookup(elems)
		if err != nil || !found || tgt.Node != nil {
			return err
		}
		n := tgt.In.s.byName[leaf]
		if n == nil {
			return newErr(ErrUnknownPath, instPath+"/"+leaf, "no such leaf")
		}
		if _, key := keyValue(tgt.In, n); key {
			if in := tgt.In; in.s.Kind == KindList {
				tx.deleteEntry(tx.open(elems[:len(elems)-1]), in.s, in.keyStr())
			}
			return nil
		}
		if tgt.In.val(n.slot).IsSet() {
			tx.setVal(tx.open(elems), n, Value{})
		}
		return nil
	}
	tgt, err := tx.locate(elems)
	if err != nil {
		return err
	}
	at := instPath
	if tgt.Node != nil {
		return newErr(ErrBadPath, at, "not an instance path")
	}
	n := tgt.In.s.byName[leaf]
	if n == nil || (n.Kind != KindLeaf && n.Kind != KindLeafList) {
		return newErr(ErrUnknownPath, at+"/"+leaf, "no such leaf")
	}
	tx.setVal(tgt.In, n, v)
	return nil
}

func (tx *Txn) parseCached(path string) ([]*gpb.PathElem, error) {
	if path == tx.lastPath && tx.lastElems != nil {
		return tx.lastElems, nil
	}
	elems, err := ParsePath(path)
	if err != nil {
		return nil, newErr(ErrBadPath, path, err.Error())
	}
	tx.lastPath, tx.lastElems = path, elems
	return elems, nil
}

// childPath names a child of an instance for error messages; it is
// rendered only when an error is built.
type childPath struct {
	in *Inst
	n  *Node
}

func (c childPath) String() string {
	p := c.in.PathString()
	if p == "/" {
		return "/" + c.n.Name
	}
	return p + "/" + c.n.Name
}
