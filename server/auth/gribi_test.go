package auth

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRIBIWrite: the policy's gribi.write tier (operator when absent) is
// the lowest that may inject routes; a bad tier is refused at load.
func TestGRIBIWrite(t *testing.T) {
	if _, err := ParsePolicy([]byte("gribi: {write: admiral}\n")); err == nil {
		t.Error("policy with gribi write tier admiral parsed")
	}
	for _, c := range []struct {
		policy string
		tier   Tier
		ok     bool
	}{
		{"certificates: {}\n", Observer, false},
		{"certificates: {}\n", Operator, true},
		{"certificates: {}\n", Master, true},
		{"gribi: {write: site-owner}\n", Operator, false},
		{"gribi: {write: site-owner}\n", SiteOwner, true},
		{"gribi: {write: observer}\n", Observer, true},
	} {
		p, err := ParsePolicy([]byte(c.policy))
		if err != nil {
			t.Fatal(err)
		}
		ctx := WithIdentity(context.Background(), Identity{Name: "x", Tier: c.tier})
		w, err := Authorizer{Policy: p}.GRIBIWrite(ctx)
		switch {
		case c.ok && (err != nil || w.Tier != string(c.tier) || w.Name != string(c.tier)+":x"):
			t.Errorf("policy %q, tier %s: %+v %v, want allowed as itself", c.policy, c.tier, w, err)
		case !c.ok && status.Code(err) != codes.PermissionDenied:
			t.Errorf("policy %q, tier %s: %v, want PERMISSION_DENIED", c.policy, c.tier, err)
		}
	}
	if err := (Authorizer{Policy: DefaultPolicy()}).GRIBIRead(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Get without identity: %v, want UNAUTHENTICATED", err)
	}
}
