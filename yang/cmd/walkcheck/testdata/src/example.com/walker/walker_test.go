package walker

import (
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Tests may address the tree by name: they check the API from outside.
func TestWalks(t *testing.T) {
	var tr *tree.Tree
	_ = tr.Root().Sub("kedge")
	_, _ = tree.ParsePath("/kedge/routes")
}
