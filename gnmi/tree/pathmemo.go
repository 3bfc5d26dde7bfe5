package tree

import "strings"

// PathMemo renders instance paths as Ident.PathString does, each from its
// parent's memoised one: the changes of a commit share a few parents (the
// routes container, each new entry), so rendering a path is its parent's
// plus one element rather than a walk from the root. The store's log
// encoder and the notary's recorder render every changed instance of a
// bulk commit this way. It holds at most a few thousand paths; the zero
// value is ready to use.
type PathMemo struct {
	paths map[Ident]string
	buf   []byte // where a path is built before it becomes a string
	// last is the path AppendInst rendered last, of instance lastID.
	last   []byte
	lastID Ident
}

// maxMemoPaths bounds the memo: a bulk commit's instances come grouped
// by parent, so a memo that starts again now and then loses little.
const maxMemoPaths = 4096

// Inst returns the path of the instance x ("/" for the root).
func (m *PathMemo) Inst(x Ident) string {
	if p, ok := m.paths[x]; ok {
		return p
	}
	p := "/"
	if par := x.Parent(); !par.IsZero() {
		pp := strings.TrimSuffix(m.Inst(par), "/")
		m.buf = x.AppendElement(append(m.buf[:0], pp...))
		p = string(m.buf)
	}
	if m.paths == nil {
		m.paths = map[Ident]string{}
	}
	if len(m.paths) > maxMemoPaths {
		clear(m.paths)
	}
	m.paths[x] = p
	return p
}

// Leaf returns the path of the leaf n of the instance x, as Change.Path
// renders it.
func (m *PathMemo) Leaf(x Ident, n *Node) string {
	p := m.Inst(x)
	if p == "/" {
		return "/" + n.Name
	}
	return p + "/" + n.Name
}

// AppendInst appends the path of instance x, as Inst returns it, to dst
// without making a string of it or memoising it: a bulk commit's
// innermost instances (each new route's config) are each met once. The
// path it rendered last stands in for the memo when it is x's parent: a
// new entry's own leaves come just before its config's.
func (m *PathMemo) AppendInst(dst []byte, x Ident) []byte {
	par := x.Parent()
	if par.IsZero() {
		return append(dst, '/')
	}
	start := len(dst)
	if m.last != nil && par == m.lastID {
		dst = append(dst, m.last...)
	} else if pp := m.Inst(par); pp != "/" {
		dst = append(dst, pp...)
	}
	dst = x.AppendElement(dst)
	m.last, m.lastID = append(m.last[:0], dst[start:]...), x
	return dst
}
