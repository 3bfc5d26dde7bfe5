package rules

import (
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/session"
)

// AccordSessionTypes refuses an accord override naming a session type
// that does not exist (say "incident-response" for "incident"): the
// handshake rules would silently ignore it, and the level would admit
// less than the operator meant.
func AccordSessionTypes(_ *tree.Tree, changes []tree.Change) error {
	for _, c := range changes {
		if c.Op != tree.OpUpdate || c.Node == nil || c.Node.Name != "allowed-session-types" {
			continue
		}
		vals := c.Val.Elems()
		if vals == nil {
			vals = []tree.Value{c.Val}
		}
		for _, v := range vals {
			if _, err := session.ParseType(v.String()); err != nil {
				return &tree.Error{Path: c.Path(), Reason: fmt.Sprintf("%q is not a session type (management, incident, monitoring, operator, routine)", v.String()), Err: tree.ErrBadValue}
			}
		}
	}
	return nil
}
