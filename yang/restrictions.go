package yang

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goyang "github.com/openconfig/goyang/pkg/yang"
)

// The tree store validates values itself, with a validator that understands
// a deliberately small subset of YANG. Everything outside the subset is
// rejected here, at build time, so that a module change can never introduce
// a construct the store would silently ignore.

// forbiddenKeywords are statements outside the supported subset, with the
// reason given to whoever writes one.
var forbiddenKeywords = map[string]string{
	"identity":     "identities are not supported; use an enumeration",
	"anydata":      "anydata is not supported",
	"anyxml":       "anyxml is not supported",
	"choice":       "choice is not supported",
	"case":         "case is not supported",
	"when":         "when is not evaluated by the store; use a semantic validator",
	"must":         "must is not evaluated by the store; use a semantic validator",
	"presence":     "presence containers are not supported",
	"augment":      "augment is not supported; edit the submodule",
	"deviation":    "deviations are not supported",
	"feature":      "features are not supported",
	"if-feature":   "features are not supported",
	"rpc":          "rpcs are not supported; the API is gNMI Set",
	"action":       "actions are not supported; the API is gNMI Set",
	"notification": "notifications are not supported; use gNMI Subscribe",
	"refine":       "refine is not supported by goyang; declare the leaf at the use",
}

// forbiddenTypes are built-in types outside the supported subset.
var forbiddenTypes = map[string]bool{
	"identityref":         true,
	"decimal64":           true,
	"empty":               true,
	"bits":                true,
	"binary":              true,
	"instance-identifier": true,
}

// allowedKinds are the resolved leaf types the store supports.
var allowedKinds = map[goyang.TypeKind]bool{
	goyang.Ystring: true, goyang.Ybool: true, goyang.Yenum: true,
	goyang.Yunion: true, goyang.Yleafref: true,
	goyang.Yint8: true, goyang.Yint16: true, goyang.Yint32: true, goyang.Yint64: true,
	goyang.Yuint8: true, goyang.Yuint16: true, goyang.Yuint32: true, goyang.Yuint64: true,
}

// Problem is one violation found by Check, with the file:line:col of the
// statement or entry it concerns.
type Problem struct {
	Pos string
	Msg string
}

func (p Problem) String() string { return p.Pos + ": " + p.Msg }

// Check returns every violation of the supported subset and of the
// conventions the daemon relies on, sorted by position.
func (s *Set) Check() []Problem {
	var ps []Problem
	for _, f := range s.Files {
		for _, st := range s.Statements[f] {
			ps = append(ps, checkStatement(st)...)
		}
	}
	for _, name := range sortedKeys(s.Modules) {
		Walk(s.Entry(name), func(e *goyang.Entry) {
			ps = append(ps, checkEntry(e)...)
		})
	}
	// A grouping used twice yields the same problem twice, at one position.
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := comparePos(a.Pos, b.Pos); c != 0 {
			return c
		}
		return strings.Compare(a.Msg, b.Msg)
	})
	return slices.Compact(ps)
}

func checkStatement(st *goyang.Statement) []Problem {
	var ps []Problem
	kw := st.Keyword
	if why, bad := forbiddenKeywords[kw]; bad {
		ps = append(ps, Problem{st.Location(), fmt.Sprintf("%s %q: %s", kw, st.Argument, why)})
	}
	switch {
	case kw == "type" && forbiddenTypes[st.Argument]:
		ps = append(ps, Problem{st.Location(), fmt.Sprintf("type %s is not supported", st.Argument)})
	case kw == "ordered-by" && st.Argument == "user":
		ps = append(ps, Problem{st.Location(), "ordered-by user is not supported"})
	case kw == "pattern":
		if _, err := CompilePattern(st.Argument); err != nil {
			ps = append(ps, Problem{st.Location(), fmt.Sprintf("pattern is not RE2: %v", err)})
		}
	case kw == "path":
		if err := checkLeafrefForm(st.Argument); err != nil {
			ps = append(ps, Problem{st.Location(), err.Error()})
		}
	}
	for _, sub := range st.SubStatements() {
		ps = append(ps, checkStatement(sub)...)
	}
	return ps
}

// comparePos orders file:line:col positions by file, then numerically.
func comparePos(a, b string) int {
	fa, la, ca := splitPos(a)
	fb, lb, cb := splitPos(b)
	return cmp.Or(strings.Compare(fa, fb), cmp.Compare(la, lb), cmp.Compare(ca, cb))
}

func splitPos(p string) (file string, line, col int) {
	parts := strings.Split(p, ":")
	if len(parts) < 3 {
		return p, 0, 0
	}
	line, _ = strconv.Atoi(parts[len(parts)-2])
	col, _ = strconv.Atoi(parts[len(parts)-1])
	return strings.Join(parts[:len(parts)-2], ":"), line, col
}

// CompilePattern compiles a YANG pattern the way the store does: as RE2,
// anchored so that the whole value must match.
func CompilePattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + p + ")$")
}

// checkLeafrefForm accepts the two path forms the store resolves: relative
// within the list entry (../config/name) and absolute without predicates.
func checkLeafrefForm(p string) error {
	if strings.ContainsAny(p, "[]") {
		return fmt.Errorf("leafref path %q: predicates are not supported", p)
	}
	if strings.HasPrefix(p, "/") {
		return nil
	}
	if !strings.HasPrefix(p, "../") {
		return fmt.Errorf("leafref path %q: must be absolute or start with ../", p)
	}
	return nil
}

func checkEntry(e *goyang.Entry) []Problem {
	var ps []Problem
	pos := goyang.Source(e.Node)
	if e.Type != nil {
		ps = append(ps, checkType(pos, e.Type)...)
		if e.Type.Kind == goyang.Yleafref {
			if _, err := ResolveLeafref(e); err != nil {
				ps = append(ps, Problem{pos, err.Error()})
			}
		}
	}
	if e.IsList() {
		ps = append(ps, checkListKeys(pos, e)...)
	}
	// Paths are public API: each node says what it is for.
	if e.Parent != nil && e.Description == "" {
		ps = append(ps, Problem{pos, fmt.Sprintf("%s has no description", SchemaPath(e))})
	}
	return ps
}

func checkType(pos string, t *goyang.YangType) []Problem {
	if !allowedKinds[t.Kind] {
		return []Problem{{pos, fmt.Sprintf("type %s (%s) is not supported", t.Name, t.Kind)}}
	}
	var ps []Problem
	for _, sub := range t.Type {
		ps = append(ps, checkType(pos, sub)...)
	}
	return ps
}

// checkListKeys enforces the OpenConfig key convention: each key leaf is a
// leafref to the same-named leaf in the entry's config container, or, for
// lists that are state only, in its state container.
func checkListKeys(pos string, e *goyang.Entry) []Problem {
	var ps []Problem
	if e.Key == "" {
		return []Problem{{pos, fmt.Sprintf("list %s has no key", SchemaPath(e))}}
	}
	for _, k := range strings.Fields(e.Key) {
		want := "../config/" + k
		if e.ReadOnly() {
			want = "../state/" + k
		}
		kl := e.Dir[k]
		switch {
		case kl == nil:
			ps = append(ps, Problem{pos, fmt.Sprintf("list %s: key leaf %s missing", SchemaPath(e), k)})
		case kl.Type == nil || kl.Type.Kind != goyang.Yleafref || kl.Type.Path != want:
			ps = append(ps, Problem{pos, fmt.Sprintf("list %s: key %s must be a leafref to %s", SchemaPath(e), k, want)})
		}
	}
	return ps
}

// ResolveLeafref returns the leaf that e's leafref path points at.
func ResolveLeafref(e *goyang.Entry) (*goyang.Entry, error) {
	p := e.Type.Path
	if err := checkLeafrefForm(p); err != nil {
		return nil, err
	}
	cur := e
	if strings.HasPrefix(p, "/") {
		// Climb to the module entry, the parent of the top-level nodes.
		for cur.Parent != nil {
			cur = cur.Parent
		}
		p = strings.TrimPrefix(p, "/")
	} else {
		// A leaf's own ".." is its parent; start from the leaf itself.
		cur = e
	}
	for _, step := range strings.Split(p, "/") {
		if step == ".." {
			if cur.Parent == nil {
				return nil, fmt.Errorf("leafref path %q climbs above the root", e.Type.Path)
			}
			cur = cur.Parent
			continue
		}
		if i := strings.IndexByte(step, ':'); i >= 0 {
			step = step[i+1:]
		}
		next := cur.Dir[step]
		if next == nil {
			return nil, fmt.Errorf("leafref path %q: no node %q under %s", e.Type.Path, step, SchemaPath(cur))
		}
		cur = next
	}
	if !cur.IsLeaf() && !cur.IsLeafList() {
		return nil, fmt.Errorf("leafref path %q points at %s, not a leaf", e.Type.Path, SchemaPath(cur))
	}
	return cur, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
