package tree

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"
)

// NodeKind says what a schema node is.
type NodeKind uint8

// The kinds of schema node the tree supports.
const (
	KindContainer NodeKind = iota + 1
	KindList
	KindLeaf
	KindLeafList
)

// Node is one compiled schema node. Nodes are immutable after Compile and
// shared by every tree built from the same Schema.
type Node struct {
	Name      string
	Module    string // module that defines the node, for RFC 7951 qualification
	Kind      NodeKind
	Config    bool // false for state (config false) nodes
	Mandatory bool
	Default   []string
	Parent    *Node
	Children  []*Node // in schema (alphabetical) order
	Keys      []*Node // key leaves of a list, in key-statement order
	Type      *Type   // leaves and leaf-lists
	Path      string  // schema path, e.g. /kedge/routes/route/config/prefix

	byName map[string]*Node
	slot   int // index into the parent's vals, subs or lists
	nvals  int // leaf and leaf-list children
	nsubs  int // container children
	nlists int // list children
	// keySlots, on a list, is one past its last key leaf's slot: how
	// many vals a new entry starts with.
	keySlots int
	// configKey, on a list key leaf, is the config leaf the key mirrors
	// (OpenConfig's key leafref to ../config/<key>), or nil.
	configKey *Node
	// keyOf, on a config leaf, is the list key leaf that mirrors it.
	keyOf *Node
	// refTargets are the leafref leaves that point at this leaf from
	// elsewhere by an absolute path; the tree indexes their values.
	indexed bool
}

// Child returns the child schema node called name, or nil.
func (n *Node) Child(name string) *Node { return n.byName[name] }

// IsOperational reports whether n is a state leaf that does not mirror a
// config leaf (gNMI's OPERATIONAL data type).
func (n *Node) IsOperational() bool {
	if n.Config {
		return false
	}
	if n.Kind != KindLeaf && n.Kind != KindLeafList {
		return false
	}
	p := n.Parent
	if p == nil || p.Name != "state" || p.Parent == nil {
		return true
	}
	cfg := p.Parent.Child("config")
	return cfg == nil || cfg.Child(n.Name) == nil
}

// Schema is the compiled YANG schema the tree validates against.
type Schema struct {
	Root *Node // a fake root whose children are the modules' top-level nodes
	// Modules lists the modules that define data nodes, for Capabilities.
	Modules []Module
}

// Module names a YANG module and its latest revision.
type Module struct {
	Name, Organization, Revision string
}

// Compile builds a Schema from goyang entries. Each root is an entry whose
// Dir holds top-level data nodes (a module entry from yang.ToEntry, or
// ygot's fake root). prefixes maps YANG prefixes to module names for nodes
// whose module cannot be found otherwise (ygot's serialised schema keeps
// prefixes only); a prefix missing from it is taken as the module name.
func Compile(roots []*yang.Entry, prefixes map[string]string) (*Schema, error) {
	c := &compiler{prefixes: prefixes, byPath: map[string]*Node{}}
	root := &Node{Name: "", Kind: KindContainer, Config: true, Path: "", byName: map[string]*Node{}}
	for _, r := range roots {
		for _, name := range sortedKeys(r.Dir) {
			if root.byName[name] != nil {
				return nil, fmt.Errorf("compile schema: duplicate top-level node %q", name)
			}
			n, err := c.node(r.Dir[name], root)
			if err != nil {
				return nil, err
			}
			root.byName[name] = n
			root.Children = append(root.Children, n)
		}
	}
	if err := c.resolveLeafrefs(); err != nil {
		return nil, err
	}
	assignSlots(root)
	return &Schema{Root: root}, nil
}

type compiler struct {
	prefixes map[string]string
	byPath   map[string]*Node
	leafrefs []pendingRef
}

type pendingRef struct {
	leaf *Node
	t    *Type
}

func (c *compiler) module(e *yang.Entry, parent *Node) string {
	if e.Node != nil {
		if m, err := e.InstantiatingModule(); err == nil {
			return m
		}
	}
	if e.Prefix != nil {
		if m, ok := c.prefixes[e.Prefix.Name]; ok {
			return m
		}
		return e.Prefix.Name
	}
	return parent.Module
}

func (c *compiler) node(e *yang.Entry, parent *Node) (*Node, error) {
	n := &Node{
		Name:      e.Name,
		Parent:    parent,
		Config:    !e.ReadOnly(),
		Mandatory: e.Mandatory == yang.TSTrue,
		Default:   e.Default,
		Path:      parent.Path + "/" + e.Name,
	}
	n.Module = c.module(e, parent)
	if !parent.Config {
		n.Config = false
	}
	switch {
	case e.IsList():
		n.Kind = KindList
	case e.IsLeafList():
		n.Kind = KindLeafList
	case e.IsLeaf():
		n.Kind = KindLeaf
	case e.IsContainer():
		n.Kind = KindContainer
	default:
		return nil, fmt.Errorf("compile schema: %s: unsupported node kind %v", n.Path, e.Kind)
	}
	c.byPath[n.Path] = n
	if n.Kind == KindLeaf || n.Kind == KindLeafList {
		t, err := c.compileType(e.Type, n)
		if err != nil {
			return nil, fmt.Errorf("compile schema: %s: %w", n.Path, err)
		}
		n.Type = t
		return n, nil
	}
	n.byName = map[string]*Node{}
	for _, name := range sortedKeys(e.Dir) {
		ch, err := c.node(e.Dir[name], n)
		if err != nil {
			return nil, err
		}
		n.byName[name] = ch
		n.Children = append(n.Children, ch)
	}
	if n.Kind == KindList {
		if e.Key == "" {
			return nil, fmt.Errorf("compile schema: %s: keyless lists are not supported", n.Path)
		}
		for _, k := range strings.Fields(e.Key) {
			kn := n.byName[k]
			if kn == nil || kn.Kind != KindLeaf {
				return nil, fmt.Errorf("compile schema: %s: key %q is not a leaf", n.Path, k)
			}
			kn.Mandatory = true
			n.Keys = append(n.Keys, kn)
		}
	}
	return n, nil
}

// assignSlots numbers each node's children within its vals, subs and
// lists. Leaves that most instances set take the first value slots, since
// an instance's vals reach only as far as its last leaf set: operational
// leaves first (reconcilers write a state container's status, seldom its
// copy of the config), then the config leaves a list key mirrors (every
// entry's config holds them), then the rest in schema order. It runs once
// leafrefs are resolved, which marks the key mirrors.
func assignSlots(n *Node) {
	for rank := range 3 {
		for _, ch := range n.Children {
			if (ch.Kind == KindLeaf || ch.Kind == KindLeafList) && slotRank(ch) == rank {
				ch.slot = n.nvals
				n.nvals++
			}
		}
	}
	for _, ch := range n.Children {
		switch ch.Kind {
		case KindContainer:
			ch.slot = n.nsubs
			n.nsubs++
		case KindList:
			ch.slot = n.nlists
			n.nlists++
		}
		assignSlots(ch)
	}
	for _, k := range n.Keys {
		n.keySlots = max(n.keySlots, k.slot+1)
	}
}

// slotRank orders a leaf's value slot among its siblings' (see
// assignSlots).
func slotRank(n *Node) int {
	switch {
	case n.IsOperational():
		return 0
	case n.keyOf != nil:
		return 1
	}
	return 2
}

// resolveLeafrefs binds every leafref to its target schema leaf, marks
// OpenConfig key mirrors, and flags absolutely referenced leaves for
// indexing.
func (c *compiler) resolveLeafrefs() error {
	var errs []error
	for _, p := range c.leafrefs {
		target, rel, err := c.resolvePath(p.leaf, p.t.refPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("compile schema: %s: leafref %q: %w", p.leaf.Path, p.t.refPath, err))
			continue
		}
		if target.Kind != KindLeaf && target.Kind != KindLeafList {
			errs = append(errs, fmt.Errorf("compile schema: %s: leafref %q points at a non-leaf", p.leaf.Path, p.t.refPath))
			continue
		}
		p.t.Target = target
		p.t.relative = rel
		if rel {
			// A list key that mirrors ../config/<key>: the tree keeps the
			// two equal itself.
			if l := p.leaf.Parent; l != nil && l.Kind == KindList && isKey(l, p.leaf) &&
				target.Parent != nil && target.Parent.Parent == l && target.Name == p.leaf.Name {
				p.leaf.configKey = target
				if target.Config {
					target.keyOf = p.leaf
				}
			}
		} else {
			target.indexed = true
		}
	}
	return errors.Join(errs...)
}

func isKey(list, leaf *Node) bool {
	for _, k := range list.Keys {
		if k == leaf {
			return true
		}
	}
	return false
}

// resolvePath follows a YANG leafref path (absolute, or relative with ../)
// on the schema. Predicates are not supported.
func (c *compiler) resolvePath(from *Node, p string) (*Node, bool, error) {
	if strings.Contains(p, "[") {
		return nil, false, errors.New("predicates are not supported")
	}
	rel := !strings.HasPrefix(p, "/")
	cur := from // YANG evaluates relative paths from the leaf itself
	if !rel {
		cur = nil
	}
	var path string
	if cur != nil {
		path = cur.Path
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == ".." {
			if cur == nil || cur.Parent == nil {
				return nil, rel, errors.New("climbs above the root")
			}
			cur = cur.Parent
			path = cur.Path
			continue
		}
		if i := strings.IndexByte(seg, ':'); i >= 0 {
			seg = seg[i+1:]
		}
		path += "/" + seg
		cur = c.byPath[path]
		if cur == nil {
			return nil, rel, fmt.Errorf("no schema node %s", path)
		}
	}
	return cur, rel, nil
}

func sortedKeys(m map[string]*yang.Entry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Find returns the schema node at a schema path like /kedge/routes/route,
// or nil.
func (s *Schema) Find(path string) *Node {
	n := s.Root
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg == "" {
			continue
		}
		if n = n.byName[seg]; n == nil {
			return nil
		}
	}
	return n
}

var _ = regexp.Compile
