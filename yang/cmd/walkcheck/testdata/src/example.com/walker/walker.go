// Package walker plants every violation walkcheck reports, beside code it
// must leave alone.
package walker

import (
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

const prefixes = "/kedge/routes" // want `hand-written tree path "/kedge/routes"`

func walks(t *tree.Tree, s *tree.Schema, n *tree.Node, name string) {
	k := t.Root().Sub("kedge")                                          // want `string-named walk \(\*tree.Inst\).Sub`
	_ = k.Sub(name)                                                     // want `string-named walk \(\*tree.Inst\).Sub`
	_ = k.Get("level")                                                  // want `string-named walk \(\*tree.Inst\).Get`
	k.Entries("route", func(*tree.Inst) bool { return true })           // want `string-named walk \(\*tree.Inst\).Entries`
	_ = k.Len("route")                                                  // want `string-named walk \(\*tree.Inst\).Len`
	_ = n.Child("config")                                               // want `string-named walk \(\*tree.Node\).Child`
	_ = s.Find("/kedge/routes")                                         // want `string-named walk \(\*tree.Schema\).Find` `hand-written tree path`
	_, _ = tree.ParsePath("/kedge/pods")                                // want `hand-written path tree.ParsePath` `hand-written tree path`
	_ = n.Name == "prefix"                                              // want `schema node compared by name with "prefix"`
	_ = []*gpb.PathElem{{Name: "kedge"}}                                // want `hand-built path element "kedge"`
	_ = &gpb.PathElem{Name: "routes", Key: map[string]string{"a": "b"}} // want `hand-built path element "routes"`
}

// Names that come from data are fine: parsing a client's path, encoding
// a node, typed access by schema node.
func fine(t *tree.Tree, n *tree.Node, clientPath string, md map[string][]string) {
	_, _ = tree.ParsePath(clientPath)
	_ = &gpb.PathElem{Name: n.Name}
	_ = t.Root().SubAt(n).Leaf(n)
	_ = strings.HasPrefix(n.Path, prefix())
	_ = md["username"]
	_ = n.Name == n.Path
}

func prefix() string { return "/" }
