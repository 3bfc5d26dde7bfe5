package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// tierList is a config list whose entries declare an authority tier that
// the posture rules act on (a route of tier master is kept at level 3, an
// underlay mutation runs only at levels that allow its tier).
type tierList struct {
	list string // schema path of the list (from gen/kedgepath)
	leaf string // schema path of the tier leaf (from gen/kedgepath)
	// empty is the tier the posture rules read for an entry whose tier
	// leaf is unset; "" ranks below every tier.
	empty Tier
}

// tierLists are every such list of the schema (TestTierListsCoverSchema
// fails when a module adds a tier leaf that is not here). The empty tiers
// are what models/intent does: "no tier on a route means operator", and
// a pod likewise; an underlay mutation without a tier is in no accord's
// underlay-mutation-tiers, so it may run at no level.
var tierLists = func() []tierList {
	k := kedgepath.Root().Kedge()
	route, pod, mut := k.Routes().RouteAny(), k.Pods().PodAny(), k.Underlay().Mutations().MutationAny()
	return []tierList{
		{list: route.SchemaPath(), leaf: route.Config().Tier().SchemaPath(), empty: Operator},
		{list: pod.SchemaPath(), leaf: pod.Config().Tier().SchemaPath(), empty: Operator},
		{list: mut.SchemaPath(), leaf: mut.Config().Tier().SchemaPath(), empty: ""},
	}
}()

// rank orders tiers; a tier that is not one (the empty tier) ranks below
// observer.
func rank(t Tier) int {
	switch t {
	case Master:
		return 3
	case SiteOwner:
		return 2
	case Operator:
		return 1
	case Observer:
		return 0
	}
	return -1
}

// boundList is a tierList resolved against a schema.
type boundList struct {
	tierList
	node   *tree.Node // the list
	parent *tree.Node // the tier leaf's container (config)
	tier   *tree.Node // the tier leaf
	rel    string     // the tier leaf's path below an entry (config/tier)
}

// boundLists resolves tierLists once, against Kedge's schema (the one
// gen/kedgetree reads); entries of any other schema match none of them.
var boundLists = sync.OnceValues(bindTierLists)

func bindTierLists() ([]boundList, error) {
	out := make([]boundList, 0, len(tierLists))
	for _, tl := range tierLists {
		n := kedgetree.Node(tl.list)
		leaf := kedgetree.Node(tl.leaf)
		if n == nil || leaf == nil || leaf.Parent == nil || leaf.Parent.Parent != n {
			return nil, fmt.Errorf("authorize write: schema has no %s", tl.leaf)
		}
		out = append(out, boundList{tierList: tl, node: n, parent: leaf.Parent, tier: leaf,
			rel: strings.TrimPrefix(tl.leaf, tl.list+"/")})
	}
	return out, nil
}

// WriteChanges enforces that a tier in the tree never ranks above the
// tier of the identity that wrote it. For every entry of a tier list the
// commit touches, the writer's tier must rank at least as high as
//   - the entry's tier before the commit, if the entry existed (a lower
//     tier may not change or delete what a higher one declared), and
//   - its tier after the commit, unless the commit deletes it (no one
//     may declare a tier above their own; an unset tier counts as the
//     tier the posture rules read for it).
//
// It looks at the commit's net changes, so every way to reach the entry
// (a leaf, the entry, the whole list or container, JSON or JSON_IETF at
// any level, replace, update or delete) is judged by what it does.
// Master outranks everything and is not checked. A refusal wraps
// target.ErrPermissionDenied and names the entry, the leaf and the tiers.
func (a Authorizer) WriteChanges(ctx context.Context, p store.Proposed) error {
	id, ok := FromContext(ctx)
	if !ok {
		return fmt.Errorf("authorize write: %w", target.ErrUnauthenticated)
	}
	if err := checkAFTUntouched(p); err != nil {
		return err
	}
	if id.Tier == Master {
		return nil
	}
	lists, err := boundLists()
	if err != nil {
		return err
	}
	seen := map[tree.Ident]bool{}
	var last tree.Ident
	for _, c := range p.Changes {
		if c.In == last {
			continue // a run of leaves of one instance
		}
		last = c.In
		e, bl := entryOf(c.In, lists)
		if e.IsZero() || seen[e] {
			continue
		}
		seen[e] = true
		if err := checkEntry(id, p, e, bl); err != nil {
			return err
		}
	}
	return nil
}

// entryOf returns the identity of the tier-list entry at or above x, if
// any.
func entryOf(x tree.Ident, lists []boundList) (tree.Ident, *boundList) {
	for ; !x.IsZero(); x = x.Parent() {
		for i := range lists {
			if x.Schema() == lists[i].node {
				return x, &lists[i]
			}
		}
	}
	return tree.Ident{}, nil
}

// checkEntry judges one entry: its tier before the commit from the
// version the commit started from, its tier after from the proposed tree
// (where it is absent if the commit deletes it).
func checkEntry(id Identity, p store.Proposed, e tree.Ident, bl *boundList) error {
	declared := func(v tree.Value) Tier {
		if v.IsSet() {
			return Tier(v.Str())
		}
		return bl.empty
	}
	// An entry existed before the commit if its first key was set then.
	if existed := p.Before(e, bl.node.Keys[0]).IsSet(); existed {
		v := p.Before(e.Child(bl.parent), bl.tier)
		if old := declared(v); rank(old) > rank(id.Tier) {
			return fmt.Errorf("authorize write: %w: tier %s (%s) may not change or delete %s: its %s is %s, above %s",
				target.ErrPermissionDenied, id.Tier, id.Name, e.PathString(), bl.rel, tierName(v, old), id.Tier)
		}
	}
	in := p.Tree.Resolve(e)
	if in == nil {
		return nil // deleted by the commit
	}
	var v tree.Value
	if cfg := in.SubAt(bl.parent); cfg != nil {
		v = cfg.Leaf(bl.tier)
	}
	if t := declared(v); rank(t) > rank(id.Tier) {
		if !v.IsSet() {
			return fmt.Errorf("authorize write: %w: tier %s (%s) may not write %s with %s unset, which the posture rules read as %s, above %s: set %s to %s",
				target.ErrPermissionDenied, id.Tier, id.Name, e.PathString(), bl.rel, t, id.Tier, bl.rel, id.Tier)
		}
		return fmt.Errorf("authorize write: %w: tier %s (%s) may not set %s/%s to %s: a declared tier may not rank above its writer's",
			target.ErrPermissionDenied, id.Tier, id.Name, e.PathString(), bl.rel, t)
	}
	return nil
}

// tierName renders a declared tier for a message: the value, or what an
// unset leaf is read as.
func tierName(v tree.Value, t Tier) string {
	if v.IsSet() {
		return string(t)
	}
	return fmt.Sprintf("unset (read as %s)", t)
}
