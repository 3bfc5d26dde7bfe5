// Package ipam is Kedge's built-in address allocator, pure and without
// state of its own: the allocations are the addresses registered under
// /kedge/pods/pod/config/addresses in the daemon's tree, so the tree is the
// one record of who holds what and nothing can drift from it.
//
// Allocation is optimistic. The plugin reads the pools and the registered
// pods, takes the first free address (Next), and claims it in the same
// gNMI Set that registers the pod. The daemon runs a uniqueness rule
// (models/rules.UniqueAddresses) inside that commit, so two concurrent ADDs that
// chose the same address cannot both commit: the loser's Set fails as a
// whole with a conflict, and it retries with that address marked used.
// There is no lock file and no second source of truth to leak.
//
// Each pool reserves its network address, its first address (the pods'
// gateway, see Gateway) and, for IPv4, its broadcast address.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrExhausted means every pool is full.
var ErrExhausted = errors.New("address pools exhausted")

// Gateway is the pool's first host address. The plugin assigns it (as a
// host route, /32 or /128) to every pod's host-side veth, so every pod on
// the node sees the same gateway and no address is spent per pod.
func Gateway(pool netip.Prefix) netip.Addr {
	return pool.Masked().Addr().Next()
}

// Next returns the first address of the pools, in order, that is neither
// reserved nor in used, and the pool it came from.
func Next(pools []netip.Prefix, used map[netip.Addr]bool) (netip.Addr, netip.Prefix, error) {
	for _, pool := range pools {
		pool = pool.Masked()
		if pool.Bits() >= pool.Addr().BitLen()-1 {
			continue // a /31 or /32 has no room beside the gateway
		}
		gw := Gateway(pool)
		for a := gw.Next(); a.IsValid() && pool.Contains(a); a = a.Next() {
			if pool.Addr().Is4() && isBroadcast(pool, a) {
				break
			}
			if !used[a] {
				return a, pool, nil
			}
		}
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("allocate from %v: %w", pools, ErrExhausted)
}

func isBroadcast(pool netip.Prefix, a netip.Addr) bool {
	n := a.Next()
	return !n.IsValid() || !pool.Contains(n)
}

// Host returns a as a single-address prefix (/32 or /128): how the pod's
// address sits on its interface and in its registration, since every pod
// reaches everything, its neighbours included, through its gateway.
func Host(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}
