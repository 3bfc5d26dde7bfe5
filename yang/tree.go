package yang

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	goyang "github.com/openconfig/goyang/pkg/yang"
)

// README markers between which Tree's listing is kept.
const (
	TreeBegin = "<!-- yang-tree:begin -->"
	TreeEnd   = "<!-- yang-tree:end -->"
)

// Tree renders a pyang -f tree style listing (RFC 8340) of the root module:
// rw/ro per node, lists as name* [keys], leaf-lists as name*, optional
// leaves as name?, and each leaf's type as written in the module. Nodes are
// listed in schema order, uses expanded in place, as pyang does.
func (s *Set) Tree() string {
	t := &treeWriter{order: s.schemaOrder()}
	mod := s.Entry(RootModule)
	fmt.Fprintf(&t.buf, "module: %s\n", RootModule)
	t.children(mod, "  ")
	return t.buf.String()
}

type treeWriter struct {
	buf   bytes.Buffer
	order func(parent *goyang.Entry) []string
}

func (t *treeWriter) children(e *goyang.Entry, prefix string) {
	names := t.order(e)
	// Leaves among these siblings share one type column.
	width := 0
	for _, n := range names {
		if c := e.Dir[n]; c.IsLeaf() || c.IsLeafList() {
			width = max(width, len(n+suffix(c)))
		}
	}
	for i, n := range names {
		c := e.Dir[n]
		flags := "rw"
		if c.ReadOnly() {
			flags = "ro"
		}
		line := fmt.Sprintf("%s+--%s %s", prefix, flags, n+suffix(c))
		if c.IsLeaf() || c.IsLeafList() {
			line = fmt.Sprintf("%s+--%s %-*s   %s", prefix, flags, width, n+suffix(c), writtenType(c))
		}
		t.buf.WriteString(strings.TrimRight(line, " ") + "\n")
		if len(c.Dir) > 0 {
			next := prefix + "|  "
			if i == len(names)-1 {
				next = prefix + "   "
			}
			t.children(c, next)
		}
	}
}

// suffix is the RFC 8340 marker after a node's name.
func suffix(e *goyang.Entry) string {
	switch {
	case e.IsList():
		return "* [" + strings.Join(strings.Fields(e.Key), " ") + "]"
	case e.IsLeafList():
		return "*"
	case e.IsLeaf():
		if e.Mandatory == goyang.TSTrue || isKey(e) {
			return ""
		}
		return "?"
	}
	return ""
}

func isKey(e *goyang.Entry) bool {
	return e.Parent != nil && e.Parent.IsList() && slices.Contains(strings.Fields(e.Parent.Key), e.Name)
}

// writtenType is the leaf's type as the module spells it (kt:ip-prefix, not
// its resolved string base), with leafrefs shown as -> path.
func writtenType(e *goyang.Entry) string {
	if e.Type != nil && e.Type.Kind == goyang.Yleafref {
		return "-> " + e.Type.Path
	}
	if e.Node != nil {
		for _, sub := range e.Node.Statement().SubStatements() {
			if sub.Keyword == "type" {
				return sub.Argument
			}
		}
	}
	if e.Type != nil {
		return e.Type.Name
	}
	return ""
}

// schemaOrder returns a function listing an entry's children in the order
// the modules declare them. goyang keeps children in a map, so the order is
// recovered from the statements: each uses is expanded to its grouping's
// statements, recursively. Names the statements do not explain (none today)
// follow in name order.
func (s *Set) schemaOrder() func(*goyang.Entry) []string {
	groupings := map[string]*goyang.Statement{}
	for _, f := range s.Files {
		for _, st := range s.Statements[f] {
			for _, sub := range st.SubStatements() {
				if sub.Keyword == "grouping" {
					groupings[sub.Argument] = sub
				}
			}
		}
	}
	var declared func(st *goyang.Statement, out []string) []string
	declared = func(st *goyang.Statement, out []string) []string {
		for _, sub := range st.SubStatements() {
			switch sub.Keyword {
			case "container", "list", "leaf", "leaf-list":
				out = append(out, sub.Argument)
			case "uses":
				name := sub.Argument
				if i := strings.IndexByte(name, ':'); i >= 0 {
					name = name[i+1:]
				}
				if g := groupings[name]; g != nil {
					out = declared(g, out)
				}
			}
		}
		return out
	}
	return func(e *goyang.Entry) []string {
		var names []string
		if e.Node != nil {
			for _, n := range declared(e.Node.Statement(), nil) {
				if e.Dir[n] != nil && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		for _, n := range sortedNames(e) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		return names
	}
}

// ReplaceTree returns readme with the text between TreeBegin and TreeEnd
// replaced by tree in a text fence. It fails if the markers are missing or
// out of order, rather than guessing where the listing belongs.
func ReplaceTree(readme []byte, tree string) ([]byte, error) {
	b := bytes.Index(readme, []byte(TreeBegin))
	e := bytes.Index(readme, []byte(TreeEnd))
	if b < 0 || e < 0 || e < b {
		return nil, fmt.Errorf("replace tree: markers %s and %s not found in order", TreeBegin, TreeEnd)
	}
	var out bytes.Buffer
	out.Write(readme[:b+len(TreeBegin)])
	out.WriteString("\n```text\n")
	out.WriteString(tree)
	out.WriteString("```\n")
	out.Write(readme[e:])
	return out.Bytes(), nil
}
