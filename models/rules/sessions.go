package rules

import (
	"fmt"
	"sync"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/session"
)

// allowedSessionTypes is the accords' allowed-session-types leaf-list.
var allowedSessionTypes = sync.OnceValue(func() *tree.Node {
	return kedgetree.Node(kedgepath.Root().Kedge().Accords().AccordAny().Config().AllowedSessionTypes().SchemaPath())
})

// AccordSessionTypes refuses an accord override naming a session type
// that does not exist (say "incident-response" for "incident"): the
// handshake rules would silently ignore it, and the level would admit
// less than the operator meant.
func AccordSessionTypes(_ *tree.Tree, changes []tree.Change) error {
	for _, c := range changes {
		if c.Op != tree.OpUpdate || c.Node != allowedSessionTypes() {
			continue
		}
		vals := c.Val.Elems()
		if vals == nil {
			vals = []tree.Value{c.Val}
		}
		for _, v := range vals {
			if _, err := session.ParseType(v.String()); err != nil {
				return &tree.RuleError{Reason: ReasonUnknownSessionType, Path: c.Path(),
					Detail: fmt.Sprintf("%q is not a session type (management, incident, monitoring, operator, routine)", v.String()), Err: tree.ErrBadValue}
			}
		}
	}
	return nil
}
