package tree

import (
	"errors"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// errNotKey: an EntryKey key that holds no value, or a leaf-list's.
var errNotKey = errors.New("not a key value")

// EntryKey names one list entry by its list and its keys' typed values
// rather than by a path element with a key map: Parent is the path of
// the list's parent, List the list's name, Names and Keys its keys' names
// and values in the list's key order (gen/kedgepath's EntryRef makes it
// from a typed path). A bulk writer's entry then costs no key map built
// by the writer and parsed back by the tree: a gRIBI load names 100,000.
type EntryKey struct {
	Parent []*gpb.PathElem
	List   string
	Names  []string
	Keys   []Value
}

// Elems returns the entry's path as gNMI elements, each key rendered as
// its text (what a path's key map holds).
func (k *EntryKey) Elems() []*gpb.PathElem {
	m := make(map[string]string, len(k.Names))
	for i, name := range k.Names {
		if i < len(k.Keys) {
			m[name] = k.Keys[i].String()
		}
	}
	out := make([]*gpb.PathElem, 0, len(k.Parent)+1)
	return append(append(out, k.Parent...), &gpb.PathElem{Name: k.List, Key: m})
}

// maxKeyedDepth is the deepest parent the keyed form resolves itself;
// a deeper one goes through the entry's path (no such list in the tree).
const maxKeyedDepth = 8

// WriteKeyedEntry is WriteEntry for the list entry k names: the same
// writes, checks and effect as WriteEntry(k.Elems(), writes), but the entry
// is found (or created) by k's values, whose path is built only for an
// error or a write that is not a plain leaf below the entry. A key that
// is not a value of its leaf's type is refused as ErrBadValue naming the
// key, as a path's key text is; a path the keyed form does not resolve
// (an unknown name, a list below a list, other key names) is written
// through k.Elems(), so it fails exactly as that path does.
func (tx *Txn) WriteKeyedEntry(k *EntryKey, writes []EntryWrite) error {
	a := &entryTarget{key: k}
	if !tx.keyedSchema(a) {
		return tx.WriteEntry(k.Elems(), writes)
	}
	return tx.writeEntry(a, writes)
}

// keyedSchema resolves a.key in the schema: the list (a.s) and the
// containers above it (a.parents); false for a path it does not resolve.
// The key values are checked when the entry is looked up (checkKeys).
func (tx *Txn) keyedSchema(a *entryTarget) bool {
	k := a.key
	if len(k.Parent) > len(a.parents) || len(k.Names) != len(k.Keys) {
		return false
	}
	if tx.keyed.match(k) {
		m := &tx.keyed
		a.s, a.nparents, a.parents = m.s, m.nparent, m.parents
		return true
	}
	s := tx.t.schema.Root
	for i, e := range k.Parent {
		c, err := childNode(s, e.GetName())
		if err != nil || c.Kind != KindContainer || len(e.GetKey()) > 0 {
			return false
		}
		a.parents[i] = c
		s = c
	}
	list, err := childNode(s, k.List)
	if err != nil || list.Kind != KindList || len(list.Keys) != len(k.Keys) {
		return false
	}
	for i, kn := range list.Keys {
		if k.Names[i] != kn.Name {
			return false
		}
	}
	a.s, a.nparents = list, len(k.Parent)
	tx.keyed.keep(a)
	return true
}

// checkKeys checks a's key values against the list's key leaves, once,
// and sets a.keys to them (a copy where a value's canonical form
// differs).
func (a *entryTarget) checkKeys() error {
	if a.keys != nil {
		return nil
	}
	k := a.key
	keys := k.Keys
	for i, kn := range a.s.Keys {
		v, err := checkKey(kn.Type, k.Keys[i])
		if err != nil {
			return newErr(ErrBadValue, renderElems(a.path()), "key "+kn.Name+": "+err.Error())
		}
		if !v.Equal(keys[i]) {
			// Canonical form differs: the entry keeps the checked value.
			if &keys[0] == &k.Keys[0] {
				keys = append([]Value(nil), k.Keys...)
			}
			keys[i] = v
		}
	}
	a.keys = keys
	return nil
}

// checkKey checks key value v against its leaf's type t, as ParseText
// checks its text: a string is checked as that text (keeping v, not a new
// copy), an integer or boolean against t's range.
func checkKey(t *Type, v Value) (Value, error) {
	switch x := v.x.(type) {
	case string:
		if b := t.base(); b.Kind == TString {
			return v, b.validString(x)
		}
		return t.ParseText(x)
	case uint64:
		return t.CheckUint(x)
	case int64:
		return t.CheckInt(x)
	case bool:
		return t.CheckBool(x)
	}
	return Value{}, errNotKey // nil, or a leaf-list's []Value
}

// findKeyed is find for the keyed entry a names (keyedSchema has resolved
// its list): the entry, or what to create when only it is absent; not ok
// when a container above it is absent, for Lookup and locate to handle;
// an error for a key value checkKeys refuses. A single string key is
// looked up as given before it is checked, as entryAt does with a key's
// text: an entry that exists has a valid key (a status write to each of
// 100,000 existing entries checks none).
func (tx *Txn) findKeyed(a *entryTarget, buf []step) (found, error) {
	in, steps := tx.t.root, buf[:0]
	for i := range a.nparents {
		c := a.parents[i]
		sub := in.subs()[c.slot]
		if sub == nil {
			return found{}, a.checkKeys()
		}
		in = sub
		steps = append(steps, step{n: c})
	}
	l := in.lists()[a.s.slot]
	// absent is a key string l was seen not to hold, when looked.
	var absent string
	looked := false
	if a.keys == nil && len(a.key.Keys) == 1 {
		if s, ok := a.key.Keys[0].x.(string); ok {
			if ent := l.get(s); ent != nil {
				return found{ok: true, in: ent, steps: append(steps, step{n: a.s, key: s})}, nil
			}
			absent, looked = s, true
		}
	}
	if err := a.checkKeys(); err != nil {
		return found{}, err
	}
	k := keyString(a.keys)
	var ent *Inst
	if !looked || k != absent {
		// Not the key just looked up (the checked value's canonical
		// text differs): a new entry's key is looked up once.
		ent = l.get(k)
	}
	if ent == nil {
		return found{ok: true, steps: steps, list: a.s, keys: a.keys, key: k}, nil
	}
	return found{ok: true, in: ent, steps: append(steps, step{n: a.s, key: k})}, nil
}
