// Package rules holds Kedge's semantic validators: constraints YANG cannot
// say (Kedge's modules use no must/when), run by the store on every config
// commit that touches their subtree, before the commit is persisted.
package rules

import (
	"fmt"
	"net/netip"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Register adds every rule to the store.
func Register(st *store.Store) {
	st.AddValidator("/kedge/routes/route", RoutePrefixes)
	st.AddValidator("/kedge/accords/accord", AccordSessionTypes)
}

// RoutePrefixes refuses a route whose prefix has host bits set
// (10.1.2.3/24): the kernel would store 10.1.2.0/24, and the tree and the
// kernel would then disagree about the route's identity.
func RoutePrefixes(_ *tree.Tree, changes []tree.Change) error {
	for _, c := range changes {
		if c.Op != tree.OpUpdate || c.Node.Name != "prefix" || c.In.Schema().Name != "route" {
			continue
		}
		s := c.Val.Str()
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("validate %s: %w", c.Path(), err)
		}
		if p.Masked() != p {
			return &tree.Error{Path: c.Path(), Reason: fmt.Sprintf("prefix %s has host bits set; the route is %s", s, p.Masked()), Err: tree.ErrBadValue}
		}
	}
	return nil
}
