package gribi

import (
	"errors"
	"strings"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// errLockdown refuses a commit that would add or change AFT entries at
// posture level 1.
var errLockdown = errors.New("gribi: posture level 1 (lockdown): route injection is refused")

// aftSchemaPrefix is the schema path under which lockdownRule looks.
var aftSchemaPrefix = aftPath.SchemaPath() + "/"

// lockdownRule refuses, inside the commit, one that adds or changes
// /kedge/aft while the effective posture level is 1. Modify and Flush
// check the level when a request arrives (postureAllowsWrite), but the
// writer commits later and the level may reach 1 in between; the store
// orders this check with the posture engine's commit of the level, so no
// injection lands after the lockdown. Removals pass: a DELETE session's
// end and the restore at start only delete.
func lockdownRule(t *tree.Tree, changes []tree.Change) error {
	if level, _ := kedgetree.Of(t).Kedge().Posture().State().EffectiveLevel(); level != 1 {
		return nil
	}
	for _, c := range changes {
		if c.Op == tree.OpUpdate && strings.HasPrefix(c.Node.Path, aftSchemaPrefix) {
			return errLockdown
		}
	}
	return nil
}
