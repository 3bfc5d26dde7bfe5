package auth

import (
	"context"
	"fmt"
)

// Tier is an authority tier. The strings match the YANG enum kt:tier.
type Tier string

// The tiers, highest first.
const (
	Master    Tier = "master"
	SiteOwner Tier = "site-owner"
	Operator  Tier = "operator"
	Observer  Tier = "observer"
)

// Tiers lists every tier, highest first.
var Tiers = []Tier{Master, SiteOwner, Operator, Observer}

// ParseTier checks that s names a tier.
func ParseTier(s string) (Tier, error) {
	if s == "site_owner" { // the spelling of the original issue
		s = string(SiteOwner)
	}
	for _, t := range Tiers {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("parse tier %q: want one of master, site-owner, operator, observer", s)
}

// Method says how an identity was established.
type Method string

// The identity paths.
const (
	MethodPassword    Method = "password"
	MethodCertificate Method = "certificate"
	MethodUnix        Method = "unix"
)

// Identity is an authenticated caller.
type Identity struct {
	// Name is the user name, the certificate identity, or "uid:N" /
	// "gid:N" for a unix peer.
	Name   string
	Tier   Tier
	Method Method
}

func (id Identity) String() string {
	return fmt.Sprintf("%s (%s, tier %s)", id.Name, id.Method, id.Tier)
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity the interceptors attached to ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
