// Package treegen generates Kedge's typed access to its tree from the YANG
// modules: gen/kedgepath (typed gNMI paths, enumerations and leaf value
// encoders, depending only on the gNMI protobufs, so the CNI plugin and
// any gNMI client can use it) and gen/kedgetree (typed readers over
// gnmi/tree for the daemon: reconcilers, rules, the posture engine).
//
// Both are written from one model of the schema built here, so a path and
// its reader always agree, and renaming a leaf in yang/ renames the Go
// method that reads or writes it: code that used the old name stops
// compiling instead of reading nothing at run time.
package treegen

import (
	"errors"
	"fmt"
	"go/token"
	"slices"
	"strings"

	goyang "github.com/openconfig/goyang/pkg/yang"

	kyang "github.com/guildhouse-co/kedge/yang"
)

type kind uint8

const (
	kContainer kind = iota + 1
	kList
	kLeaf
	kLeafList
)

// node is one schema node of the model.
type node struct {
	e        *goyang.Entry
	parent   *node
	kind     kind
	name     string // YANG name
	method   string // Go method name on the parent (CamelCase of name)
	typeName string // Go type name from the path, e.g. Kedge_Routes_Route
	path     string // schema path, e.g. /kedge/routes/route
	children []*node
	keys     []*node // a list's key leaves, in key statement order
	leaf     *leafType
	config   bool
}

// leafType is the Go view of a leaf's (or a leaf-list element's) type.
type leafType struct {
	goType string // string, uint32, bool, int64, or an enum type's name
	base   base
	enum   *enumType // for base == bEnum
}

type base uint8

const (
	bString base = iota + 1
	bUint
	bInt
	bBool
	bEnum
)

// enumType is a generated Go type for a YANG enumeration: named after its
// typedef, or, for an inline enumeration, after the node that owns the
// leaf and the leaf (/kedge/routes/route/state/status: RouteStatus).
type enumType struct {
	name   string
	doc    string
	values []string // in YANG value order
	from   string   // the typedef or first leaf, for error messages
}

// model is the schema as the generators see it.
type model struct {
	root  *node
	nodes []*node // every node, depth first, children in name order
	enums []*enumType
	byEnm map[string]*enumType
}

func build(root *goyang.Entry) (*model, error) {
	if root == nil {
		return nil, errors.New("build model: no root entry")
	}
	m := &model{byEnm: map[string]*enumType{}}
	var errs []error
	var walk func(e *goyang.Entry, parent *node) *node
	walk = func(e *goyang.Entry, parent *node) *node {
		n := &node{e: e, parent: parent, name: e.Name, method: goyang.CamelCase(e.Name),
			path: kyang.SchemaPath(e), config: !e.ReadOnly()}
		n.typeName = typeName(n)
		switch {
		case e.IsList():
			n.kind = kList
		case e.IsLeafList():
			n.kind = kLeafList
		case e.IsLeaf():
			n.kind = kLeaf
		case e.IsContainer():
			n.kind = kContainer
		default:
			errs = append(errs, fmt.Errorf("%s: unsupported node kind", n.path))
			return n
		}
		m.nodes = append(m.nodes, n)
		if n.kind == kLeaf || n.kind == kLeafList {
			t, err := m.leafType(e, n)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.path, err))
			}
			n.leaf = t
			return n
		}
		names := make([]string, 0, len(e.Dir))
		for name := range e.Dir {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			n.children = append(n.children, walk(e.Dir[name], n))
		}
		if n.kind == kList {
			for _, k := range strings.Fields(e.Key) {
				kn := n.child(k)
				if kn == nil || kn.kind != kLeaf {
					errs = append(errs, fmt.Errorf("%s: key %q is not a leaf", n.path, k))
					continue
				}
				n.keys = append(n.keys, kn)
			}
		}
		return n
	}
	m.root = walk(root, nil)
	slices.SortFunc(m.enums, func(a, b *enumType) int { return strings.Compare(a.name, b.name) })
	if err := m.checkNames(); err != nil {
		errs = append(errs, err)
	}
	return m, errors.Join(errs...)
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// typeName joins the CamelCase names from the root: /kedge/routes/route is
// Kedge_Routes_Route.
func typeName(n *node) string {
	var parts []string
	for p := n; p != nil; p = p.parent {
		parts = append(parts, goyang.CamelCase(p.name))
	}
	slices.Reverse(parts)
	return strings.Join(parts, "_")
}

// leafType maps a leaf's YANG type to Go, following leafrefs to their
// target and unions of string types to string.
func (m *model) leafType(e *goyang.Entry, n *node) (*leafType, error) {
	t := e.Type
	if t == nil {
		return nil, errors.New("leaf has no type")
	}
	if t.Kind == goyang.Yleafref {
		target, err := kyang.ResolveLeafref(e)
		if err != nil {
			return nil, err
		}
		return m.leafType(target, n)
	}
	switch t.Kind {
	case goyang.Ystring:
		return &leafType{goType: "string", base: bString}, nil
	case goyang.Ybool:
		return &leafType{goType: "bool", base: bBool}, nil
	case goyang.Yuint8, goyang.Yuint16, goyang.Yuint32, goyang.Yuint64:
		return &leafType{goType: t.Kind.String(), base: bUint}, nil
	case goyang.Yint8, goyang.Yint16, goyang.Yint32, goyang.Yint64:
		return &leafType{goType: t.Kind.String(), base: bInt}, nil
	case goyang.Yunion:
		for _, mt := range t.Type {
			if mt.Kind != goyang.Ystring {
				return nil, fmt.Errorf("union %s has a member of type %s; only unions of strings are supported", t.Name, mt.Kind)
			}
		}
		return &leafType{goType: "string", base: bString}, nil
	case goyang.Yenum:
		et, err := m.enum(e, n)
		if err != nil {
			return nil, err
		}
		return &leafType{goType: et.name, base: bEnum, enum: et}, nil
	}
	return nil, fmt.Errorf("type %s (%s) is not supported", t.Name, t.Kind)
}

// enum returns the Go enum type of e's enumeration, creating it on first
// sight. Twins (a config leaf and its state mirror) share one type.
func (m *model) enum(e *goyang.Entry, n *node) (*enumType, error) {
	t := e.Type
	name, doc, from := "", "", ""
	if t.Name != "enumeration" {
		name = goyang.CamelCase(t.Name)
		doc = fmt.Sprintf("%s is the YANG enumeration %s.", name, t.Name)
		from = "typedef " + t.Name
	} else {
		owner := n.parent
		for owner != nil && (owner.name == "config" || owner.name == "state") {
			owner = owner.parent
		}
		if owner == nil {
			return nil, errors.New("inline enumeration without an owning node")
		}
		name = goyang.CamelCase(owner.name) + goyang.CamelCase(e.Name)
		doc = fmt.Sprintf("%s is the enumeration of %s.", name, n.path)
		from = n.path
	}
	type ev struct {
		name string
		v    int64
	}
	var vals []ev
	for nm, v := range t.Enum.NameMap() {
		vals = append(vals, ev{nm, v})
	}
	slices.SortFunc(vals, func(a, b ev) int {
		if a.v != b.v {
			if a.v < b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	values := make([]string, len(vals))
	for i, v := range vals {
		values[i] = v.name
	}
	if old := m.byEnm[name]; old != nil {
		if !slices.Equal(old.values, values) {
			return nil, fmt.Errorf("enumeration type name %s is taken by %s with other values", name, old.from)
		}
		return old, nil
	}
	et := &enumType{name: name, doc: doc, values: values, from: from}
	m.byEnm[name] = et
	m.enums = append(m.enums, et)
	return et, nil
}

// reserved are the method names the generated types define themselves.
var reserved = map[string]bool{
	"Inst": true, "Exists": true, "Elems": true, "Parts": true, "Path": true, "String": true,
	"SchemaPath": true, "Val": true, "Len": true, "All": true, "Get": true,
}

// checkNames fails on any Go name the generated packages would declare
// twice or that is not an identifier.
func (m *model) checkNames() error {
	var errs []error
	types := map[string]string{}
	claim := func(name, what string) {
		if !token.IsIdentifier(name) {
			errs = append(errs, fmt.Errorf("%s: %q is not a Go identifier", what, name))
		}
		if old, ok := types[name]; ok {
			errs = append(errs, fmt.Errorf("%s and %s both need the Go name %s", old, what, name))
		}
		types[name] = what
	}
	claim("Root", "the root reader")
	claim("RootPath", "the root path")
	for _, n := range m.nodes {
		if n.kind == kContainer || n.kind == kList {
			claim(n.typeName, n.path)
			claim(n.typeName+"Path", n.path+" (path)")
		} else {
			claim(n.typeName+"Path", n.path+" (path)")
		}
		if n.kind == kList {
			claim(n.typeName+"List", n.path+" (list reader)")
		}
		if n.parent != nil && reserved[n.method] {
			errs = append(errs, fmt.Errorf("%s: its Go method name %s is reserved", n.path, n.method))
		}
		if n.kind == kList {
			if n.parent != nil && n.parent.child(n.name+"-any") != nil {
				errs = append(errs, fmt.Errorf("%s: %sAny collides with a sibling", n.path, n.method))
			}
		}
	}
	for _, e := range m.enums {
		claim(e.name, e.from)
		for _, v := range e.values {
			claim(e.name+goyang.CamelCase(v), e.from+" value "+v)
		}
	}
	return errors.Join(errs...)
}

// paramName is a key's Go parameter name.
func paramName(key string) string {
	c := goyang.CamelCase(key)
	p := strings.ToLower(c[:1]) + c[1:]
	if token.IsKeyword(p) {
		p += "_"
	}
	return p
}

// comment wraps text into // lines of about 78 columns.
func comment(text string) string {
	var b strings.Builder
	line := "//"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 78 && line != "//" {
			b.WriteString(line + "\n")
			line = "//"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
	return b.String()
}

func kindText(n *node) string {
	switch n.kind {
	case kList:
		return "list entry"
	case kLeafList:
		return "leaf-list"
	case kLeaf:
		return "leaf"
	}
	return "container"
}

func rwText(n *node) string {
	if n.config {
		return "config"
	}
	return "state"
}
