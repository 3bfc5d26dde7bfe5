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

// Entry is the operation writing leaves of the instance p (a list entry
// or a container), given as Update, Replace or Delete operations on
// leaves below p: the commit is what those operations would make it,
// leaf for leaf, with the same checks, and so is its log record, but the
// tree finds the instance once for all of them rather than once per leaf
// from the root. An operation of another kind among leaves fails the
// commit, as one outside p does.
//
//	e := kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4Entry(prefix)
//	op := store.Entry(e, store.Update(e.Config().Prefix(), prefix),
//		store.Update(e.Config().NextHopGroup(), nhg))
func Entry[P Path](p P, leaves ...Op) Op {
	ws := make([]tree.EntryWrite, len(leaves))
	for i, l := range leaves {
		ws[i].Path = l.Path
		switch l.Kind {
		case OpUpdate, OpReplace:
			ws[i].Val = l.Val
		case OpDelete:
			ws[i].Delete = true
		}
		// Any other kind is left with no value, which the tree refuses.
	}
	return Op{Kind: OpEntry, Path: p.Elems(), Leaves: ws}
}
