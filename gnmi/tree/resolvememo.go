package tree

import gpb "github.com/openconfig/gnmi/proto/gnmi"

// A bulk writer names the same list and the same few leaves entry after
// entry: a gRIBI load's 100,000 keyed writes all name /kedge/aft's
// ipv4-entry list and its entries' config/next-hop-group and
// config/session. Resolving them in the schema is a map lookup per path
// element (three for the list, two a leaf, five leaves' worth an entry);
// the memos below keep the last resolutions of a transaction and reuse
// one when the names are the same elements again. An element is matched
// by pointer and name both, so a writer that reuses its elements with
// other names (or another buffer with the same names) resolves afresh or
// matches by name; nothing is reused across transactions.

// keyedMemo is the schema resolution of the last EntryKey shape
// WriteKeyedEntry resolved: its parent elements, list and key names, and
// what keyedSchema found for them.
type keyedMemo struct {
	ok      bool
	elems   [maxKeyedDepth]*gpb.PathElem
	names   [maxKeyedDepth]string
	nparent int
	list    string
	keys    []string
	s       *Node
	parents [maxKeyedDepth]*Node
}

// match reports whether k names the same list as the memo, element by
// element: pointers and names equal, no key map on a parent.
func (m *keyedMemo) match(k *EntryKey) bool {
	if !m.ok || len(k.Parent) != m.nparent || k.List != m.list || len(k.Names) != len(m.keys) {
		return false
	}
	for i, e := range k.Parent {
		if e != m.elems[i] || e.GetName() != m.names[i] || len(e.GetKey()) > 0 {
			return false
		}
	}
	for i, n := range k.Names {
		if n != m.keys[i] {
			return false
		}
	}
	return true
}

// keep records a's resolution of its key (keyedSchema has succeeded).
func (m *keyedMemo) keep(a *entryTarget) {
	k := a.key
	m.ok, m.nparent, m.list, m.s = true, a.nparents, k.List, a.s
	m.keys = append(m.keys[:0], k.Names...) // a copy: the writer may reuse its slice
	for i, e := range k.Parent {
		m.elems[i], m.names[i] = e, e.GetName()
	}
	m.parents = a.parents
}

// maxMemoBelow is the longest leaf path below an instance that
// belowMemo keeps, and belowMemos how many it keeps.
const (
	maxMemoBelow = 3
	belowMemos   = 4
)

// belowMemo is one leafBelow resolution: the relative path's elements
// and names below an instance of s, the leaf and the containers on the
// way.
type belowMemo struct {
	s      *Node
	n      int
	elems  [maxMemoBelow]*gpb.PathElem
	names  [maxMemoBelow]string
	leaf   *Node
	chain  [maxMemoBelow]*Node
	nchain int
}

// leafBelowMemo is leafBelow for the transaction's writes, from its memo
// when the same elements were resolved below s before.
func (tx *Txn) leafBelowMemo(s *Node, rel []*gpb.PathElem, buf []*Node) (*Node, []*Node, bool) {
	if len(rel) == 0 || len(rel) > maxMemoBelow || s == nil {
		return leafBelow(s, rel, buf)
	}
	for i := range tx.below {
		m := &tx.below[i]
		if m.s != s || m.n != len(rel) {
			continue
		}
		hit := true
		for j, e := range rel {
			if e != m.elems[j] || e.GetName() != m.names[j] || len(e.GetKey()) > 0 {
				hit = false
				break
			}
		}
		if hit {
			return m.leaf, append(buf, m.chain[:m.nchain]...), true
		}
	}
	n, chain, ok := leafBelow(s, rel, buf)
	if ok {
		m := &tx.below[tx.belowNext%belowMemos]
		tx.belowNext++
		*m = belowMemo{s: s, n: len(rel), leaf: n, nchain: len(chain)}
		for j, e := range rel {
			m.elems[j], m.names[j] = e, e.GetName()
		}
		copy(m.chain[:], chain)
	}
	return n, chain, ok
}
