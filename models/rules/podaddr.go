package rules

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// UniqueAddresses makes the CNI plugin's address allocation race-free: no
// address may be registered for two pod attachments (compared without
// prefix length). The plugin claims addresses in the Set that registers
// the pod, and this rule runs inside that commit, so "check free, then
// claim" is one atomic step (see package cni/ipam); a lost race is a
// RuleError with ReasonPodAddressInUse, which the plugin answers by
// picking another address.
//
// It reads every pod: the reference the incremental PodAddresses is
// tested against (All registers PodAddresses).
func UniqueAddresses(t *tree.Tree, _ []tree.Change) error {
	owner := map[netip.Addr]string{}
	var errs []error
	for e := range kedgetree.Of(t).Kedge().Pods().Pod().All() {
		cfg := e.Config()
		if !cfg.Exists() {
			continue
		}
		cid, _ := cfg.ContainerId()
		ifname, _ := cfg.Ifname()
		id := cid + "/" + ifname
		for _, v := range cfg.Addresses() {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				continue // the schema validated it; nothing to compare
			}
			if other, ok := owner[p.Addr()]; ok {
				errs = append(errs, &tree.RuleError{Reason: ReasonPodAddressInUse, Path: e.Inst().PathString(),
					Detail: fmt.Sprintf("%s held by %s and %s", p.Addr(), other, id)})
				continue
			}
			owner[p.Addr()] = id
		}
	}
	return errors.Join(errs...)
}

// The schema paths PodAddresses looks for in a commit's changes.
var (
	podListPath  = kedgepath.Root().Kedge().Pods().PodAny().SchemaPath()
	podAddrsPath = kedgepath.Root().Kedge().Pods().PodAny().Config().Addresses().SchemaPath()
)

// PodAddresses is UniqueAddresses at the cost of the pods a commit
// touches, not of every pod: a pod ADD into a node with many pods must not
// read them all (issue 17; each read allocated, and the collector's work
// over it made the ADD's tail).
//
// It keeps an index from address to the pod entries that may hold it, a
// superset of the truth: a rule cannot know whether the commit it checks
// will be persisted, so it never removes an owner on a commit's word. A
// commit's touched pods (found from its changes) are read from the
// proposed tree and each of their addresses is looked up; an owner found
// in the index counts only if the proposed tree still gives it that
// address, so stale owners cost a lookup, never a false refusal. After the
// check the touched pods' new addresses, and the old ones the changes
// carry (the commit may yet fail), join the index. When stale owners
// outnumber the live ones the index is rebuilt from the proposed tree
// plus those old addresses (amortized O(1) a commit). The first check
// builds it the same way; the store runs no rule on what it loads from
// disk, and every later change of a pod's addresses goes through a
// commit this rule sees.
//
// Safe for concurrent use (the store commits one at a time anyway).
type PodAddresses struct {
	mu     sync.Mutex
	owners map[netip.Addr][]tree.Ident
	n      int // owners held, stale ones included
	live   int // owners at the last rebuild
	// Slack is how many stale owners beyond the live ones the index
	// keeps before a rebuild (1024 when zero; tests make it small).
	Slack int
}

// Check is the rule (a store.Validator).
func (r *PodAddresses) Check(t *tree.Tree, changes []tree.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	pods := kedgetree.Of(t).Kedge().Pods()
	// The pod entries the commit touched, in change order, and the
	// addresses the changes took from them.
	var touched []tree.Ident
	seen := map[tree.Ident]bool{}
	var old []owned
	for _, ch := range changes {
		if !strings.HasPrefix(ch.Node.Path, podListPath+"/") {
			continue
		}
		id := ch.In
		for !id.IsZero() && id.Schema().Path != podListPath {
			id = id.Parent()
		}
		if id.IsZero() {
			continue
		}
		if !seen[id] {
			seen[id] = true
			touched = append(touched, id)
		}
		if ch.Node.Path == podAddrsPath {
			for _, v := range ch.Old.Elems() {
				if p, err := netip.ParsePrefix(v.Str()); err == nil {
					old = append(old, owned{p.Addr(), id})
				}
			}
		}
	}
	if r.owners == nil {
		r.rebuild(pods, old)
	}
	var errs []error
	var claimed []owned
	mine := map[netip.Addr]string{} // the touched pods' claims in this commit
	for _, id := range touched {
		e, ok := podEntry(pods, id)
		if !ok {
			continue // deleted
		}
		cfg := e.Config()
		if !cfg.Exists() {
			continue
		}
		name := podName(id)
		for _, v := range cfg.Addresses() {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				continue // the schema validated it; nothing to compare
			}
			a := p.Addr()
			claimed = append(claimed, owned{a, id})
			other, dup := mine[a]
			if !dup {
				for _, o := range r.owners[a] {
					if !seen[o] && holds(pods, o, a) {
						other, dup = podName(o), true
						break
					}
				}
			}
			if dup {
				errs = append(errs, &tree.RuleError{Reason: ReasonPodAddressInUse, Path: e.Inst().PathString(),
					Detail: fmt.Sprintf("%s held by %s and %s", a, other, name)})
				continue
			}
			mine[a] = name
		}
	}
	for _, o := range append(old, claimed...) {
		r.add(o)
	}
	if r.n > 2*r.live+cmp.Or(r.Slack, 1024) {
		r.rebuild(pods, old)
	}
	return errors.Join(errs...)
}

// owned is one address of one pod entry.
type owned struct {
	addr netip.Addr
	id   tree.Ident
}

func (r *PodAddresses) add(o owned) {
	for _, id := range r.owners[o.addr] {
		if id == o.id {
			return
		}
	}
	r.owners[o.addr] = append(r.owners[o.addr], o.id)
	r.n++
}

// rebuild indexes every pod of the proposed tree, plus extra (addresses
// the commit being checked took away: the tree before it still has them).
func (r *PodAddresses) rebuild(pods kedgetree.Kedge_Pods, extra []owned) {
	r.owners, r.n = map[netip.Addr][]tree.Ident{}, 0
	for e := range pods.Pod().All() {
		for _, v := range e.Config().Addresses() {
			if p, err := netip.ParsePrefix(v); err == nil {
				r.add(owned{p.Addr(), e.Inst().Ident()})
			}
		}
	}
	for _, o := range extra {
		r.add(o)
	}
	r.live = r.n
}

// podEntry finds the pod entry id names in the proposed tree.
func podEntry(pods kedgetree.Kedge_Pods, id tree.Ident) (kedgetree.Kedge_Pods_Pod, bool) {
	if !pods.Exists() {
		return kedgetree.Kedge_Pods_Pod{}, false
	}
	in := pods.Inst().Entry(id.Schema(), id.Keys()...)
	if in == nil || in.Ident() != id {
		return kedgetree.Kedge_Pods_Pod{}, false
	}
	return kedgetree.AsKedge_Pods_Pod(in)
}

// holds reports whether the pod entry id has address a in the proposed
// tree.
func holds(pods kedgetree.Kedge_Pods, id tree.Ident, a netip.Addr) bool {
	e, ok := podEntry(pods, id)
	if !ok {
		return false
	}
	for _, v := range e.Config().Addresses() {
		if p, err := netip.ParsePrefix(v); err == nil && p.Addr() == a {
			return true
		}
	}
	return false
}

// podName is the pod entry's container-id/ifname, as refusals name it.
func podName(id tree.Ident) string {
	ks := id.Keys()
	if len(ks) != 2 {
		return id.PathString()
	}
	return ks[0].Str() + "/" + ks[1].Str()
}
