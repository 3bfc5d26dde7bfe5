package rules

import (
	"errors"
	"fmt"
	"net/netip"

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
