// Package kedgetree stands in for generated code, which may walk by name.
package kedgetree

import "github.com/guildhouse-co/kedge/gnmi/tree"

func Kedge(t *tree.Tree) *tree.Inst { return t.Root().Sub("kedge") }
