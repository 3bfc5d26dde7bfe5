package auth

import (
	"context"
	"fmt"
	"strings"

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

// Principal names the caller as "tier:name", for the record of a
// commit-confirmed it leaves pending.
func (a Authorizer) Principal(ctx context.Context) string {
	id, ok := FromContext(ctx)
	if !ok {
		return ""
	}
	return string(id.Tier) + ":" + id.Name
}

// ownerTier is the tier in a Principal; a record without one (made
// before commits carried their author) is treated as master's, so only
// master may resolve it early; it still rolls back on time.
func ownerTier(owner string) Tier {
	t, _, _ := strings.Cut(owner, ":")
	if pt, err := ParseTier(t); err == nil {
		return pt
	}
	return Master
}

// ResolvePending allows confirming, cancelling or re-timing a pending
// commit-confirmed to its author's tier and the tiers above it, when the
// caller may also write everything the commit changed: a higher tier can
// end a lower tier's pending commit (which holds every other Set back),
// a lower tier cannot end a higher one's.
func (a Authorizer) ResolvePending(ctx context.Context, owner string, paths []string) error {
	id, ok := FromContext(ctx)
	if !ok {
		return fmt.Errorf("authorize commit confirmation: %w", target.ErrUnauthenticated)
	}
	if ot := ownerTier(owner); rank(id.Tier) < rank(ot) {
		return fmt.Errorf("authorize commit confirmation: %w: the pending commit is %s's, tier %s; tier %s (%s) may not confirm or cancel it",
			target.ErrPermissionDenied, owner, ot, id.Tier, id.Name)
	}
	for _, p := range paths {
		if ok, why := a.Policy.MayWrite(id.Tier, p); !ok {
			return fmt.Errorf("authorize commit confirmation: %w: tier %s (%s) may not Set %s, which the pending commit changed: %s",
				target.ErrPermissionDenied, id.Tier, id.Name, p, why)
		}
	}
	return nil
}
