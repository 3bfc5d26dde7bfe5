package store

import (
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Keyed is Entry for the list entry r names by its typed keys: the same
// commit, checks and log record (the record is rendered from the changes,
// not from the operation), but the tree finds or creates the entry by
// r's key values, so no path element and key map is built for the entry
// and parsed back by the tree. Its leaves are named by paths relative to
// the entry, from the list's Below accessor; a leaf path with a keyed
// part is passed whole, and one outside the entry fails the commit.
//
//	ents := kedgepath.Root().Kedge().Aft().Ipv4Entries()
//	c := ents.Ipv4EntryBelow().Config()
//	op := store.Keyed(ents.Ipv4EntryRef(prefix), store.Set(c.NextHopGroup(), nhg))
func Keyed(r kedgepath.EntryRef, leaves ...LeafWrite) Op {
	ws := make([]tree.EntryWrite, len(leaves))
	for i, l := range leaves {
		ws[i].Path, ws[i].Relative = keyedLeafPath(l.keyed, l.rel)
		ws[i].Val, ws[i].Delete = l.val, l.del
	}
	return Op{Kind: OpEntry, Key: EntryKeyOf(&r), Leaves: ws}
}

// KeyedLeafPath is leaf p's path for a tree.EntryWrite of a Keyed
// operation, as Keyed passes it: relative when p comes from a Below path
// (it has no keyed part), else whole. It is for writers that build Keyed
// operations' leaf writes themselves (from chunks, say).
func KeyedLeafPath[P SplitPath](p P) (path []*gpb.PathElem, relative bool) {
	return keyedLeafPath(p.Parts())
}

func keyedLeafPath(keyed, rel []*gpb.PathElem) ([]*gpb.PathElem, bool) {
	if len(keyed) == 0 {
		return rel, true
	}
	return leafPath(nil, keyed, rel)
}

// keyVals holds an EntryKey and its values in one allocation: two, the
// most keys a list of the schema has (more are allocated apart).
type keyVals struct {
	k    tree.EntryKey
	vals [2]tree.Value
}

// EntryKeyOf returns the tree's key of the entry r names, for a Keyed
// operation whose leaf writes a writer builds itself.
func EntryKeyOf(r *kedgepath.EntryRef) *tree.EntryKey {
	kv := &keyVals{k: tree.EntryKey{Parent: r.Parent(), List: r.List(), Names: r.KeyNames()}}
	n := r.NumKeys()
	vals := kv.vals[:0]
	if n > len(kv.vals) {
		vals = make([]tree.Value, 0, n)
	}
	for i := range n {
		vals = append(vals, keyValue(r.Key(i)))
	}
	kv.k.Keys = vals
	return &kv.k
}

// keyValue is the tree's value of key k.
func keyValue(k kedgepath.Key) tree.Value {
	switch k.Kind {
	case kedgepath.KeyUint:
		return tree.Uint(k.Uint)
	case kedgepath.KeyInt:
		return tree.Int(k.Int)
	case kedgepath.KeyBool:
		return tree.Bool(k.Uint == 1)
	}
	return tree.String(k.Text)
}
