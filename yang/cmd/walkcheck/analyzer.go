package main

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// Analyzer is the string-walk check; see the package doc.
var Analyzer = &analysis.Analyzer{
	Name: "walkcheck",
	Doc:  "reports string-named walks and hand-built paths of the Kedge tree outside gnmi/tree and gen/",
	Run:  run,
}

const (
	treePkg = "github.com/guildhouse-co/kedge/gnmi/tree"
	genPkg  = "github.com/guildhouse-co/kedge/gen/"
	gnmiPkg = "github.com/openconfig/gnmi/proto/gnmi"
	hint    = "use gen/kedgetree (reading) or gen/kedgepath (paths)"
	// kedgeRoot is the tree's root path, spelled so that this file holds
	// no literal the check would report.
	kedgeRoot = "/" + "kedge"
)

// walks are the name-based lookups of gnmi/tree, by receiver type.
var walks = map[string]map[string]bool{
	"Inst":   {"Sub": true, "Get": true, "Entries": true, "Len": true},
	"Node":   {"Child": true},
	"Schema": {"Find": true},
}

func exempt(path string) bool {
	return path == treePkg || strings.HasPrefix(path, treePkg+"/") || strings.HasPrefix(path, genPkg)
}

func run(pass *analysis.Pass) (any, error) {
	if exempt(pass.Pkg.Path()) {
		return nil, nil
	}
	for _, f := range pass.Files {
		if strings.HasSuffix(pass.Fset.File(f.Pos()).Name(), "_test.go") {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				checkCall(pass, n)
			case *ast.CompositeLit:
				checkPathElem(pass, n)
			case *ast.BasicLit:
				checkPathLiteral(pass, n)
			case *ast.BinaryExpr:
				checkNameCompare(pass, n)
			}
			return true
		})
	}
	return nil, nil
}

// named returns the package path and name of t's named type (through a
// pointer).
func named(t types.Type) (pkg, name string) {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	nt, ok := types.Unalias(t).(*types.Named)
	if !ok || nt.Obj().Pkg() == nil {
		return "", ""
	}
	return nt.Obj().Pkg().Path(), nt.Obj().Name()
}

func checkCall(pass *analysis.Pass, call *ast.CallExpr) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return
	}
	if s := pass.TypesInfo.Selections[sel]; s != nil && s.Kind() == types.MethodVal {
		pkg, recv := named(s.Recv())
		if pkg == treePkg && walks[recv][sel.Sel.Name] {
			pass.Reportf(call.Pos(), "string-named walk (*tree.%s).%s: %s", recv, sel.Sel.Name, hint)
		}
		return
	}
	if obj, ok := pass.TypesInfo.Uses[sel.Sel].(*types.Func); ok && obj.Pkg() != nil &&
		obj.Pkg().Path() == treePkg && obj.Name() == "ParsePath" && len(call.Args) == 1 {
		if tv, ok := pass.TypesInfo.Types[call.Args[0]]; ok && tv.Value != nil {
			pass.Reportf(call.Pos(), "hand-written path tree.ParsePath(%s): %s", tv.Value.ExactString(), hint)
		}
	}
}

func checkPathElem(pass *analysis.Pass, lit *ast.CompositeLit) {
	tv, ok := pass.TypesInfo.Types[lit]
	if !ok {
		return
	}
	if pkg, name := named(tv.Type); pkg != gnmiPkg || name != "PathElem" {
		return
	}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if id, ok := kv.Key.(*ast.Ident); !ok || id.Name != "Name" {
			continue
		}
		if v, ok := pass.TypesInfo.Types[kv.Value]; ok && v.Value != nil {
			pass.Reportf(lit.Pos(), "hand-built path element %s: %s", v.Value.ExactString(), hint)
		}
	}
}

func checkPathLiteral(pass *analysis.Pass, lit *ast.BasicLit) {
	if lit.Kind != token.STRING {
		return
	}
	tv, ok := pass.TypesInfo.Types[lit]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return
	}
	if s := constant.StringVal(tv.Value); s == kedgeRoot || strings.HasPrefix(s, kedgeRoot+"/") {
		pass.Reportf(lit.Pos(), "hand-written tree path %q: %s", s, hint)
	}
}

// checkNameCompare reports node.Name == "leaf" for a *tree.Node.
func checkNameCompare(pass *analysis.Pass, b *ast.BinaryExpr) {
	if b.Op != token.EQL && b.Op != token.NEQ {
		return
	}
	for _, pair := range [][2]ast.Expr{{b.X, b.Y}, {b.Y, b.X}} {
		sel, ok := pair[0].(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Name" {
			continue
		}
		s := pass.TypesInfo.Selections[sel]
		if s == nil || s.Kind() != types.FieldVal {
			continue
		}
		if pkg, name := named(s.Recv()); pkg != treePkg || name != "Node" {
			continue
		}
		if tv, ok := pass.TypesInfo.Types[pair[1]]; ok && tv.Value != nil {
			pass.Reportf(b.Pos(), "schema node compared by name with %s: %s", tv.Value.ExactString(), hint)
			return
		}
	}
}
