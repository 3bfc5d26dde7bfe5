package kernel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"golang.org/x/sys/unix"
)

func (b *Backend) ruleToKernel(r route.Rule) rtnl.Rule {
	n := r.Normalize()
	fam := uint8(unix.AF_INET)
	if n.IPv6 {
		fam = unix.AF_INET6
	}
	return rtnl.Rule{Family: fam, Priority: n.Priority, Src: n.Src, Dst: n.Dst, Table: n.Table,
		Mark: n.Mark, Mask: n.Mask, Protocol: b.proto}
}

// addRules adds the desired rules the kernel lacks. Rules have no key but
// their whole tuple, so a changed rule is an add plus a later delete.
func (b *Backend) addRules(ctx context.Context, rules []route.Rule) ([]route.RuleStatus, map[rtnl.Rule]bool, []error) {
	st := make([]route.RuleStatus, len(rules))
	keep := make(map[rtnl.Rule]bool, len(rules))
	have, err := b.conn.Rules(b.proto)
	if err != nil {
		err = fmt.Errorf("list rules: %w", err)
		for i, r := range rules {
			st[i] = route.RuleStatus{Rule: r, State: route.StateFailed, Err: &route.RuleError{Rule: r, Err: err}}
		}
		// Without the kernel's list nothing may be deleted: keep is partial.
		return st, nil, []error{err}
	}
	kernel := make(map[rtnl.Rule]bool, len(have))
	for _, r := range have {
		kernel[r] = true
	}
	check := route.CheckRules(rules)
	var reqs []rtnl.Request
	var reqIdx []int
	for i, r := range rules {
		st[i] = route.RuleStatus{Rule: r, State: route.StateInstalled}
		k := b.ruleToKernel(r)
		keep[k] = true
		if check[i] != nil {
			st[i].State, st[i].Err = route.StateFailed, &route.RuleError{Rule: r, Err: check[i]}
			continue
		}
		if kernel[k] {
			continue
		}
		reqs = append(reqs, rtnl.NewRule(k))
		reqIdx = append(reqIdx, i)
	}
	results, err := b.conn.Exec(ctx, reqs, b.batch)
	var errs []error
	for j, rerr := range results {
		if rerr != nil {
			i := reqIdx[j]
			st[i].State, st[i].Err = route.StateFailed, &route.RuleError{Rule: rules[i], Err: fmt.Errorf("add rule: %w", rerr)}
		}
	}
	for _, s := range st {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("add rules: %w", err))
	}
	return st, keep, errs
}

// deleteStaleRules removes Kedge rules not in keep; a nil keep (the rule
// list failed earlier) deletes nothing.
//
// The kernel deletes the first rule in its list that matches the given
// attributes, treating an absent source, destination or mark as "any". So
// deleting "1000 from all lookup 5" can remove a wanted "1000 from
// 10.1.0.0/16 lookup 5" listed before it. We replay the kernel's list here:
// when a wanted rule would be hit, a copy of it is added first (the kernel
// appends it after the stale one), then the delete takes the original.
// The wanted rule is never absent.
func (b *Backend) deleteStaleRules(ctx context.Context, keep map[rtnl.Rule]bool) []error {
	if keep == nil {
		return nil
	}
	have, err := b.conn.Rules(b.proto)
	if err != nil {
		return []error{fmt.Errorf("delete stale rules: %w", err)}
	}
	if b.held != nil {
		for r := range b.held.rules {
			keep[r] = true
		}
	}
	reqs, names, errs := planRuleDeletes(have, keep)
	results, err := b.conn.Exec(ctx, reqs, b.batch)
	for j, rerr := range results {
		if rerr != nil && !errors.Is(rerr, unix.ENOENT) {
			errs = append(errs, &route.RuleError{Rule: names[j], Err: fmt.Errorf("delete stale rule: %w", rerr)})
		}
	}
	if err != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("delete stale rules: %w", err))
	}
	return errs
}

type ruleEntry struct {
	r     rtnl.Rule
	stale bool
}

// planRuleDeletes returns the requests, in order, that delete the stale
// rules of have (in kernel list order) without ever removing a kept one.
func planRuleDeletes(have []rtnl.Rule, keep map[rtnl.Rule]bool) ([]rtnl.Request, []route.Rule, []error) {
	list := make([]ruleEntry, 0, len(have))
	seen := make(map[rtnl.Rule]bool, len(have))
	for _, r := range have {
		// Rules with selectors Kedge never sets are left alone; an identical
		// second copy of a kept rule is stale.
		stale := !r.Other && (!keep[r] || seen[r])
		seen[r] = true
		list = append(list, ruleEntry{r: r, stale: stale})
	}
	var reqs []rtnl.Request
	var names []route.Rule
	var errs []error
	for range 4*len(list) + 1 {
		s := slices.IndexFunc(list, func(e ruleEntry) bool { return e.stale })
		if s < 0 {
			break
		}
		x := list[s].r
		j := slices.IndexFunc(list, func(e ruleEntry) bool { return ruleMatches(x, e.r) })
		hit := list[j]
		switch {
		case hit.stale || hit.r == x:
			list = slices.Delete(list, j, j+1)
		case hit.r.Other:
			errs = append(errs, &route.RuleError{Rule: publicRule(x), Err: fmt.Errorf("delete stale rule: would hit a rule Kedge did not make")})
			list[s].stale = false
			continue
		default:
			list = slices.Delete(list, j, j+1)
			at := len(list)
			for k, e := range list {
				if e.r.Family == hit.r.Family && e.r.Priority > hit.r.Priority {
					at = k
					break
				}
			}
			list = slices.Insert(list, at, hit)
			reqs = append(reqs, rtnl.NewRule(hit.r))
			names = append(names, publicRule(hit.r))
		}
		reqs = append(reqs, rtnl.DelRule(x))
		names = append(names, publicRule(x))
	}
	return reqs, names, errs
}

// ruleMatches is the kernel's rule_find for the attributes Kedge sets.
func ruleMatches(pattern, r rtnl.Rule) bool {
	switch {
	case r.Family != pattern.Family, r.Priority != pattern.Priority, r.Table != pattern.Table,
		r.Protocol != pattern.Protocol:
		return false
	case pattern.Mark != 0 && r.Mark != pattern.Mark, pattern.Mask != 0 && r.Mask != pattern.Mask:
		return false
	case pattern.Src.IsValid() && r.Src != pattern.Src, pattern.Dst.IsValid() && r.Dst != pattern.Dst:
		return false
	}
	return true
}

func publicRule(r rtnl.Rule) route.Rule {
	return route.Rule{Priority: r.Priority, Src: r.Src, Dst: r.Dst, Table: r.Table,
		Mark: r.Mark, Mask: r.Mask, IPv6: r.Family == unix.AF_INET6}
}
