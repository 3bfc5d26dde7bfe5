package store

import gpb "github.com/openconfig/gnmi/proto/gnmi"

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
