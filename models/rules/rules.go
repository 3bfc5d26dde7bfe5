// Package rules holds Kedge's semantic rules: constraints YANG cannot say
// (Kedge's modules use no must/when), which the store runs on every config
// commit that touches their subtree, before the commit is persisted. All
// returns them; the daemon registers them with its store. A refusal is a
// *tree.RuleError with a stable reason (the Reason constants), which gNMI
// clients receive in the failed Set's google.rpc.ErrorInfo.
package rules

import (
	"fmt"
	"net/netip"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Reasons of the rules' refusals: stable, part of the API.
const (
	// ReasonRoutePrefixHostBits: a route's prefix has host bits set.
	ReasonRoutePrefixHostBits = "ROUTE_PREFIX_HOST_BITS"
	// ReasonPodAddressInUse: an address is registered for two pod
	// attachments (the CNI plugin then picks another address).
	ReasonPodAddressInUse = "POD_ADDRESS_IN_USE"
	// ReasonUnknownSessionType: an accord names a session type that does
	// not exist.
	ReasonUnknownSessionType = "UNKNOWN_SESSION_TYPE"
)

// Rule is one semantic rule: the schema path whose changes trigger it, and
// the check, which sees the tree as it will be if the commit succeeds and
// must not modify it (a store.Validator).
type Rule struct {
	Prefix string
	Check  func(t *tree.Tree, changes []tree.Change) error
}

// All returns every rule.
func All() []Rule {
	routes := kedgepath.Root().Kedge().Routes()
	return []Rule{
		{Prefix: routes.RouteAny().SchemaPath(), Check: RoutePrefixes},
		{Prefix: kedgepath.Root().Kedge().Pods().SchemaPath(), Check: (&PodAddresses{}).Check},
		{Prefix: kedgepath.Root().Kedge().Accords().AccordAny().SchemaPath(), Check: AccordSessionTypes},
	}
}

// routeKeyPrefix is the schema path of a route entry's prefix key.
var routeKeyPrefix = kedgepath.Root().Kedge().Routes().RouteAny().Prefix().SchemaPath()

// RoutePrefixes refuses a route whose prefix has host bits set
// (10.1.2.3/24): the kernel would store 10.1.2.0/24, and the tree and the
// kernel would then disagree about the route's identity.
func RoutePrefixes(_ *tree.Tree, changes []tree.Change) error {
	for _, c := range changes {
		if c.Op != tree.OpUpdate || c.Node.Path != routeKeyPrefix {
			continue
		}
		s := c.Val.Str()
		p, err := netip.ParsePrefix(s)
		if err != nil {
			// The schema's pattern admits only prefixes; this is a bug
			// there, reported as the value's fault all the same.
			return &tree.RuleError{Reason: ReasonRoutePrefixHostBits, Path: c.Path(), Detail: err.Error(), Err: tree.ErrBadValue}
		}
		if p.Masked() != p {
			return &tree.RuleError{Reason: ReasonRoutePrefixHostBits, Path: c.Path(),
				Detail: fmt.Sprintf("prefix %s has host bits set; the route is %s", s, p.Masked()), Err: tree.ErrBadValue}
		}
	}
	return nil
}
