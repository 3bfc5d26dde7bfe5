// Package podrule holds the daemon-side semantic rule that makes the CNI
// plugin's address allocation race-free: no address may be registered for
// two pod attachments. The store runs it inside every commit that touches
// /kedge/pods, so the plugin's "check free, then claim" is one atomic step
// (see package cni/ipam). The daemon registers it with Register; the
// plugin never imports this package.
package podrule

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Prefix is the schema path the rule watches.
const Prefix = "/kedge/pods"

// Register installs the rule on the daemon's store.
func Register(st *store.Store) { st.AddValidator(Prefix, UniqueAddresses) }

// UniqueAddresses is a store.Validator: it fails when two attachments in
// the tree-to-be share an address (compared without prefix length). The
// error text carries registry.ConflictMarker so the plugin can tell a lost
// race from a real failure.
func UniqueAddresses(t *tree.Tree, _ []tree.Change) error {
	k := t.Root().Sub("kedge")
	if k == nil {
		return nil
	}
	pods := k.Sub("pods")
	if pods == nil {
		return nil
	}
	owner := map[netip.Addr]string{}
	var errs []error
	pods.Entries("pod", func(e *tree.Inst) bool {
		cfg := e.Sub("config")
		if cfg == nil {
			return true
		}
		id := cfg.Get("container-id").Str() + "/" + cfg.Get("ifname").Str()
		for _, v := range cfg.Get("addresses").Elems() {
			p, err := netip.ParsePrefix(v.Str())
			if err != nil {
				continue // the schema validated it; nothing to compare
			}
			if other, ok := owner[p.Addr()]; ok {
				errs = append(errs, fmt.Errorf("%s: %s held by %s and %s", registry.ConflictMarker, p.Addr(), other, id))
				continue
			}
			owner[p.Addr()] = id
		}
		return true
	})
	return errors.Join(errs...)
}
