package tree

import (
	"fmt"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Tree is a data tree over a Schema: the writer's tree, or a read-only
// snapshot of one committed version.
//
// The writer's tree is not safe for concurrent use (the store serialises
// writers). A snapshot never changes and any number of goroutines may
// read it at once, also while the writer commits: every commit makes a
// new version and leaves the ones before it as they were.
type Tree struct {
	schema *Schema
	root   *Inst
	// snapshot marks a read-only view of one version.
	snapshot bool
	// targets counts, per absolutely referenced leaf, how many instances
	// hold each value; refs counts the leafrefs that point at each value.
	// Together they make leafref checks O(changed leaves), not O(tree).
	// They describe the last committed version; a transaction computes
	// its own deltas and adds them on commit.
	targets map[*Node]map[string]int
	refs    map[*Node]map[string]int
	tx      *Txn
	txIDs   uint64 // ids of this tree's transactions, for Inst.mark
	// touchBuf is the last transaction's touched list, emptied, for the
	// next one: a bulk load's commits each make thousands of instances,
	// and growing the list from nothing each time allocated five times
	// its size.
	touchBuf []touch
	// memoBuf is the last transaction's leaf memo cache, emptied, for the
	// next (3.5 KB that a small Set would otherwise allocate each time).
	memoBuf *[memoSlots]leafMemo
	// jsonNames are the JSON member names transactions decoded, and
	// plans merge's plans for them, kept for the next transaction (see
	// jsonNames, mergePlan).
	jsonNames *jsonNames
	plans     map[*Node]*mergePlan
	// analyses numbers the transactions' analyses (see ident.listed).
	analyses uint64
}

// maxTouchBuf bounds the touched list a tree keeps between transactions
// (16 bytes an instance): a huge commit's is let go.
const maxTouchBuf = 1 << 16

// New returns an empty tree over s.
func New(s *Schema) *Tree {
	return &Tree{
		schema:  s,
		root:    newInst(s.Root, nil, 0, 0),
		targets: map[*Node]map[string]int{},
		refs:    map[*Node]map[string]int{},
	}
}

// Snapshot returns a read-only view of the last committed version. It
// costs one allocation: the version's instances are shared, not copied.
// While a transaction is open it still returns the version before it.
func (t *Tree) Snapshot() *Tree {
	root := t.root
	if t.tx != nil {
		root = t.tx.base
	}
	return &Tree{schema: t.schema, root: root, snapshot: true}
}

// Schema returns the tree's schema.
func (t *Tree) Schema() *Schema { return t.schema }

// Root returns the root instance: for the writer's tree with a
// transaction open, the version the transaction is building.
func (t *Tree) Root() *Inst { return t.root }

// childNode finds the schema child for a path element name, accepting an
// RFC 7951 module qualifier ("kedge:routes") when it names the node's
// module.
func childNode(parent *Node, name string) (*Node, error) {
	if n := parent.byName[name]; n != nil {
		return n, nil
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		if n := parent.byName[name[i+1:]]; n != nil && n.Module == name[:i] {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %q under %s", name, nodeName(parent))
}

func nodeName(n *Node) string {
	if n.Path == "" {
		return "/"
	}
	return n.Path
}

// parseKeys turns a path element's key map into the list's key values.
func parseKeys(list *Node, e *gpb.PathElem, elems []*gpb.PathElem) ([]Value, error) {
	if len(e.GetKey()) == len(list.Keys) {
		// Fast path: every key present and valid; no message rendering.
		keys := make([]Value, len(list.Keys))
		ok := true
		for i, k := range list.Keys {
			s, found := e.GetKey()[k.Name]
			if !found || s == "*" {
				ok = false
				break
			}
			v, err := k.Type.ParseText(s)
			if err != nil {
				ok = false
				break
			}
			keys[i] = v
		}
		if ok {
			return keys, nil
		}
	}
	at := renderElems(elems)
	if len(e.GetKey()) != len(list.Keys) {
		return nil, newErr(ErrBadPath, at, fmt.Sprintf("list %s needs keys %s, got %d", list.Name, keyNames(list), len(e.GetKey())))
	}
	keys := make([]Value, len(list.Keys))
	for i, k := range list.Keys {
		s, ok := e.GetKey()[k.Name]
		if !ok {
			return nil, newErr(ErrBadPath, at, fmt.Sprintf("list %s needs key %q", list.Name, k.Name))
		}
		if s == "*" {
			return nil, newErr(ErrBadPath, at, "wildcard key "+k.Name+" is not allowed here")
		}
		v, err := k.Type.ParseText(s)
		if err != nil {
			return nil, newErr(ErrBadValue, at, "key "+k.Name+": "+err.Error())
		}
		keys[i] = v
	}
	return keys, nil
}

func keyNames(list *Node) string {
	names := make([]string, len(list.Keys))
	for i, k := range list.Keys {
		names[i] = k.Name
	}
	return "[" + strings.Join(names, ",") + "]"
}

// Target is what a concrete path resolves to: an instance (Node nil), a
// leaf or leaf-list of an instance, or a whole list under an instance.
type Target struct {
	In   *Inst
	Node *Node
}

// Lookup resolves a concrete (wildcard-free) path without creating
// anything. found is false when the path is valid but holds no data.
func (t *Tree) Lookup(elems []*gpb.PathElem) (Target, bool, error) {
	in := t.root
	for i, e := range elems {
		// Rendered only for errors: Lookup runs once per Set operation.
		at := func() string { return renderElems(elems[:i+1]) }
		n, err := childNode(in.s, e.GetName())
		if err != nil {
			return Target{}, false, newErr(ErrUnknownPath, at(), err.Error())
		}
		last := i == len(elems)-1
		switch n.Kind {
		case KindLeaf, KindLeafList:
			if !last {
				return Target{}, false, newErr(ErrUnknownPath, at(), "a leaf has no children")
			}
			return Target{In: in, Node: n}, in.val(n.slot).IsSet(), nil
		case KindContainer:
			if len(e.GetKey()) > 0 {
				return Target{}, false, newErr(ErrBadPath, at(), "container "+n.Name+" takes no keys")
			}
			sub := in.subs()[n.slot]
			if sub == nil {
				return Target{}, false, checkRest(n, elems[i+1:], at())
			}
			in = sub
		case KindList:
			if len(e.GetKey()) == 0 && last {
				return Target{In: in, Node: n}, in.lists()[n.slot].n > 0, nil
			}
			keys, err := parseKeys(n, e, elems[:i+1])
			if err != nil {
				return Target{}, false, err
			}
			ent := in.lists()[n.slot].get(keyString(keys))
			if ent == nil {
				return Target{}, false, checkRest(n, elems[i+1:], at())
			}
			in = ent
		}
	}
	return Target{In: in}, true, nil
}

// checkRest validates the schema of the remaining elements below a node
// that has no data, so a typo is reported as such rather than NotFound.
func checkRest(n *Node, rest []*gpb.PathElem, at string) error {
	for _, e := range rest {
		ch, err := childNode(n, e.GetName())
		if err != nil {
			return newErr(ErrUnknownPath, at+"/"+e.GetName(), err.Error())
		}
		n = ch
		at += "/" + e.GetName()
	}
	return nil
}

// RenderPath renders path elements in gNMI string form.
func RenderPath(elems []*gpb.PathElem) string { return renderElems(elems) }

func renderElems(elems []*gpb.PathElem) string {
	if len(elems) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, e := range elems {
		b.WriteByte('/')
		b.WriteString(e.GetName())
		if len(e.GetKey()) == 0 {
			continue
		}
		names := make([]string, 0, len(e.GetKey()))
		for k := range e.GetKey() {
			names = append(names, k)
		}
		sortStrings(names)
		for _, k := range names {
			b.WriteByte('[')
			b.WriteString(k)
			b.WriteByte('=')
			writeEscapedKey(&b, e.GetKey()[k])
			b.WriteByte(']')
		}
	}
	return b.String()
}
