package store

import (
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Operations on the typed paths of gen/kedgepath, so that writers (the
// reconcilers' state, the posture engine) name what they write with
// compile-checked paths and values:
//
//	ops := []store.Op{
//		store.Update(kedgepath.Root().Kedge().System().State().NodeName(), name),
//		store.Delete(kedgepath.Root().Kedge().System().State().Cluster()),
//	}

// Path is any typed path.
type Path interface {
	Elems() []*gpb.PathElem
}

// Leaf is a typed leaf or leaf-list path whose values are T.
type Leaf[T any] interface {
	Path
	Val(v T) *gpb.TypedValue
}

// Update is the operation setting leaf p to v.
func Update[P Leaf[T], T any](p P, v T) Op {
	return Op{Kind: OpUpdate, Path: p.Elems(), Val: p.Val(v)}
}

// Replace is the operation making leaf p hold exactly v. The tree writes
// a leaf-list's value whole, so for leaves and leaf-lists alike it has
// Update's effect; it is here for writers that mean replace.
func Replace[P Leaf[T], T any](p P, v T) Op {
	return Op{Kind: OpReplace, Path: p.Elems(), Val: p.Val(v)}
}

// Delete is the operation removing whatever p names.
func Delete[P Path](p P) Op {
	return Op{Kind: OpDelete, Path: p.Elems()}
}

// SplitPath is a typed path that also gives its elements in the two
// parts gen/kedgepath holds them: up to and including its last keyed
// element, and the keyless elements below it.
type SplitPath interface {
	Path
	Parts() (keyed, rel []*gpb.PathElem)
}

// SplitLeaf is a typed leaf or leaf-list path (see SplitPath) whose
// values are T.
type SplitLeaf[T any] interface {
	SplitPath
	Val(v T) *gpb.TypedValue
}

// LeafWrite is one leaf write of an Entry operation: Set or Unset.
type LeafWrite struct {
	keyed, rel []*gpb.PathElem
	val        *gpb.TypedValue
	del        bool
}

// Set is the leaf write setting leaf p to v, as Update does.
func Set[P SplitLeaf[T], T any](p P, v T) LeafWrite {
	k, r := p.Parts()
	return LeafWrite{keyed: k, rel: r, val: p.Val(v)}
}

// Unset is the leaf write removing leaf p, as Delete does.
func Unset[P SplitPath](p P) LeafWrite {
	k, r := p.Parts()
	return LeafWrite{keyed: k, rel: r, del: true}
}

// Entry is the operation writing leaves of the instance p (a list entry
// or a container), given as Set or Unset leaf writes below p: the commit
// is what Update and Delete of those leaves would make it, leaf for leaf,
// with the same checks, and so is its log record, but the tree finds the
// instance once for all of them rather than once per leaf from the root.
// A leaf built from the same entry path value as p (its elements up to
// the entry are p's) is passed to the tree relative to p, so its whole
// path is never built; any other leaf is passed whole, and one outside p
// fails the commit.
//
//	e := kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4Entry(prefix)
//	op := store.Entry(e, store.Set(e.Config().Prefix(), prefix),
//		store.Set(e.Config().NextHopGroup(), nhg))
func Entry[P Path](p P, leaves ...LeafWrite) Op {
	at := p.Elems()
	ws := make([]tree.EntryWrite, len(leaves))
	for i, l := range leaves {
		ws[i].Path, ws[i].Relative = leafPath(at, l.keyed, l.rel)
		ws[i].Val, ws[i].Delete = l.val, l.del
	}
	return Op{Kind: OpEntry, Path: at, Leaves: ws}
}

// EntryLeafPath is leaf p's path for a tree.EntryWrite at the instance
// whose elements are at, as Entry passes it: relative to the instance
// when p was built from the same entry path value (its keyed part is at's
// very elements), else whole. It is for writers that build Entry
// operations' leaf writes themselves (from chunks, say).
func EntryLeafPath[P SplitPath](at []*gpb.PathElem, p P) (path []*gpb.PathElem, relative bool) {
	keyed, rel := p.Parts()
	return leafPath(at, keyed, rel)
}

// leafPath is the path of the leaf whose parts are keyed and rel for an
// entry write at at (see EntryLeafPath).
func leafPath(at, keyed, rel []*gpb.PathElem) ([]*gpb.PathElem, bool) {
	switch {
	case len(rel) > 0 && sameElems(keyed, at):
		return rel, true
	case len(rel) == 0:
		return keyed, false
	}
	return append(append(make([]*gpb.PathElem, 0, len(keyed)+len(rel)), keyed...), rel...), false
}

// sameElems reports whether a and b hold the same elements (pointers).
func sameElems(a, b []*gpb.PathElem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
