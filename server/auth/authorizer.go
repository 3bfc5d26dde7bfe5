package auth

import (
	"context"
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/target"
)

// Authorizer implements target.Authorizer from the Identity the
// interceptors put in the context and the policy's write rules.
type Authorizer struct {
	Policy *Policy
}

var _ target.Authorizer = Authorizer{}

// Read allows every authenticated identity, observers included.
func (a Authorizer) Read(ctx context.Context) error {
	if _, ok := FromContext(ctx); !ok {
		return fmt.Errorf("authorize read: %w", target.ErrUnauthenticated)
	}
	return nil
}

// Write allows the Set only when the identity's tier may write every one
// of the paths; the error names the first path refused and the tier.
func (a Authorizer) Write(ctx context.Context, paths []string) error {
	id, ok := FromContext(ctx)
	if !ok {
		return fmt.Errorf("authorize write: %w", target.ErrUnauthenticated)
	}
	if !a.Policy.MayWriteAnything(id.Tier) {
		return fmt.Errorf("authorize write: %w: tier %s (%s) may not Set anything", target.ErrPermissionDenied, id.Tier, id.Name)
	}
	for _, p := range paths {
		if ok, why := a.Policy.MayWrite(id.Tier, p); !ok {
			return fmt.Errorf("authorize write: %w: tier %s (%s) may not Set %s: %s", target.ErrPermissionDenied, id.Tier, id.Name, p, why)
		}
	}
	return nil
}
