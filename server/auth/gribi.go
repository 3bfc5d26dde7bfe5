package auth

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/server/gribi"
)

// GRIBIRules are the policy's gRIBI rights: the lowest tier that may
// Modify and Flush (default operator). Every authenticated identity may
// Get, as every one may read the tree.
type GRIBIRules struct {
	Write Tier `yaml:"write"`
}

// defaultGRIBIWrite is the lowest tier that may inject routes when the
// policy does not say.
const defaultGRIBIWrite = Operator

var _ gribi.Authorizer = Authorizer{}

// GRIBIWrite allows a gRIBI Modify or Flush to an identity whose tier
// ranks at least as high as the policy's gribi write tier. Its route
// tier is the identity's.
func (a Authorizer) GRIBIWrite(ctx context.Context) (gribi.Writer, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return gribi.Writer{}, status.Error(codes.Unauthenticated, "authorize gribi write: no identity")
	}
	min := a.Policy.gribiWrite
	if rank(id.Tier) < rank(min) {
		return gribi.Writer{}, status.Errorf(codes.PermissionDenied,
			"authorize gribi write: tier %s (%s) may not inject routes: the policy requires %s or above", id.Tier, id.Name, min)
	}
	return gribi.Writer{Name: string(id.Tier) + ":" + id.Name, Tier: string(id.Tier)}, nil
}

// GRIBIRead allows a gRIBI Get to every authenticated identity.
func (a Authorizer) GRIBIRead(ctx context.Context) error {
	if _, ok := FromContext(ctx); !ok {
		return status.Error(codes.Unauthenticated, "authorize gribi read: no identity")
	}
	return nil
}

// aftPrefix is /kedge/aft's schema path: its config is the gRIBI
// service's alone.
var aftPrefix = kedgepath.Root().Kedge().Aft().SchemaPath()

// checkAFTUntouched refuses a gNMI commit that would change /kedge/aft:
// the gRIBI RIB is its source, and an entry changed behind its back would
// make the RIB and the tree disagree. Whatever the policy's write rules
// say, master included.
func checkAFTUntouched(p store.Proposed) error {
	for _, c := range p.Changes {
		if c.Node.Path == aftPrefix || strings.HasPrefix(c.Node.Path, aftPrefix+"/") {
			return fmt.Errorf("authorize write: %w: %s is written only through gRIBI", target.ErrPermissionDenied, c.Path())
		}
	}
	return nil
}
