package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/guildhouse-co/kedge/cni/ipam"
	"github.com/guildhouse-co/kedge/cni/registry"
)

// maxConflicts bounds the allocation retries after lost races; each retry
// marks the lost address used, so this is also how many concurrent ADDs
// one ADD can lose to before giving up with "try again later".
const maxConflicts = 64

// undo is ADD's rollback stack, run in reverse on failure.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

func (u undo) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		errs = append(errs, u[i]())
	}
	return errors.Join(errs...)
}

// Add is CNI ADD.
func Add(args *skel.CmdArgs) (err error) {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	kns, kname, tier, mode, err := conf.identity(args.Args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.timeout())
	defer cancel()
	reg, err := dial(conf)
	if err != nil {
		return err
	}
	defer reg.Close()

	var rollback undo
	defer func() {
		if err != nil {
			if rerr := rollback.run(); rerr != nil {
				err = fmt.Errorf("%w (rollback: %v)", err, rerr)
			}
		}
	}()
	pod := registry.Pod{ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		Namespace: kns, Name: kname, Tier: tier, AllowedMode: mode}

	if conf.PrevResult != nil {
		return addChained(ctx, args, conf, reg, pod, &rollback)
	}

	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "open netns "+args.Netns, err.Error())
	}
	defer netns.Close()
	pod.HostIfName = HostVethName(args.ContainerID, args.IfName)

	// The veth needs no address, so it is created while the allocation
	// (or the delegated IPAM plugin) runs; ADD waits for both before
	// returning, so rollback never races the link's creation.
	type linkDone struct {
		pl  podLink
		err error
	}
	linkc := make(chan linkDone, 1)
	var ld linkDone
	rollback.push(func() error {
		if !ld.pl.created {
			return nil
		}
		return deleteHostVeth(pod.HostIfName)
	})
	go func() {
		pl, err := createVeth(netns, args.IfName, pod.HostIfName, conf.MTU)
		linkc <- linkDone{pl, err}
	}()
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	gws, aerr := address(ctx, args, conf, reg, &pod, result, &rollback)
	ld = <-linkc
	if aerr != nil {
		return aerr
	}
	if ld.err != nil {
		return types.NewError(ErrLink, "set up veth", ld.err.Error())
	}
	pl := ld.pl
	if err := configureVeth(netns, args.IfName, pod.HostIfName, pod.Addresses, gws); err != nil {
		return types.NewError(ErrLink, "configure veth", err.Error())
	}
	result.Interfaces = []*current.Interface{
		{Name: pl.hostName, Mac: pl.hostMAC},
		{Name: pl.contName, Mac: pl.contMAC, Sandbox: args.Netns},
	}
	for i, a := range pod.Addresses {
		ipc := &current.IPConfig{Interface: current.Int(1), Address: *ipNet(a)}
		if i < len(gws) {
			ipc.Gateway = net.IP(gws[i].AsSlice())
		}
		result.IPs = append(result.IPs, ipc)
	}
	for _, gw := range gws {
		result.Routes = append(result.Routes, &types.Route{Dst: *defaultDst(gw), GW: net.IP(gw.AsSlice())})
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// address gets the pod its addresses, from the built-in allocator (which
// registers the pod in the same step) or from the delegated IPAM plugin
// (then registers it), and returns the gateways.
func address(ctx context.Context, args *skel.CmdArgs, conf *NetConf, reg *registry.Client, pod *registry.Pod, result *current.Result, rollback *undo) ([]netip.Addr, error) {
	if builtinIPAM(conf) {
		addr, pool, err := allocate(ctx, conf, reg, *pod, rollback)
		if err != nil {
			return nil, err
		}
		pod.Addresses = []netip.Prefix{ipam.Host(addr)}
		return []netip.Addr{ipam.Gateway(pool)}, nil
	}
	r, err := invoke.DelegateAdd(ctx, conf.IPAM.Type, args.StdinData, nil)
	if err != nil {
		return nil, types.NewError(ErrDelegate, "delegated ipam "+conf.IPAM.Type, err.Error())
	}
	rollback.push(func() error { return invoke.DelegateDel(context.Background(), conf.IPAM.Type, args.StdinData, nil) })
	ir, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(ErrDelegate, "convert ipam result", err.Error())
	}
	var gws []netip.Addr
	for _, ipc := range ir.IPs {
		a, _ := netip.AddrFromSlice(ipc.Address.IP)
		pod.Addresses = append(pod.Addresses, ipam.Host(a.Unmap()))
		if g, ok := netip.AddrFromSlice(ipc.Gateway); ok {
			gws = append(gws, g.Unmap())
		}
	}
	result.DNS = ir.DNS
	if err := registerOnce(ctx, reg, *pod, rollback); err != nil {
		return nil, err
	}
	return gws, nil
}

// addChained registers the pod with the previous plugin's addresses and
// passes its result through: a chained kedge creates no interface.
func addChained(ctx context.Context, args *skel.CmdArgs, conf *NetConf, reg *registry.Client, pod registry.Pod, rollback *undo) error {
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "convert prevResult", err.Error())
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface < len(prev.Interfaces) {
			itf := prev.Interfaces[*ipc.Interface]
			if itf.Sandbox == "" || itf.Name != args.IfName {
				continue
			}
		}
		a, _ := netip.AddrFromSlice(ipc.Address.IP)
		ones, _ := ipc.Address.Mask.Size()
		pod.Addresses = append(pod.Addresses, netip.PrefixFrom(a.Unmap(), ones))
	}
	for _, itf := range prev.Interfaces {
		if itf.Sandbox == "" && len(itf.Name) <= 15 {
			pod.HostIfName = itf.Name
			break
		}
	}
	if err := registerOnce(ctx, reg, pod, rollback); err != nil {
		return err
	}
	return types.PrintResult(prev, conf.CNIVersion)
}

// allocate picks the first free address and claims it in the Set that
// registers the pod, retrying past addresses a concurrent ADD claimed
// between our read and our Set (see package cni/ipam).
func allocate(ctx context.Context, conf *NetConf, reg *registry.Client, pod registry.Pod, rollback *undo) (netip.Addr, netip.Prefix, error) {
	pools, err := conf.pools()
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, types.NewError(types.ErrInvalidNetworkConfig, "invalid pools", err.Error())
	}
	if len(pools) == 0 {
		if pools, err = reg.Pools(ctx); err != nil {
			return netip.Addr{}, netip.Prefix{}, registryError("read ipam pools", err)
		}
		if len(pools) == 0 {
			return netip.Addr{}, netip.Prefix{}, types.NewError(types.ErrInvalidNetworkConfig, "no ipam pools",
				"set ipam.pools or subnet in the conf, or /kedge/pods/config/ipam-pools in the daemon")
		}
	}
	pods, err := reg.Addresses(ctx)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, registryError("list pod addresses", err)
	}
	used := map[netip.Addr]bool{}
	for _, p := range pods {
		if p.ContainerID == pod.ContainerID && p.IfName == pod.IfName {
			continue // a retried ADD may take its own address again
		}
		for _, a := range p.Addresses {
			used[a.Addr()] = true
		}
	}
	for range maxConflicts {
		addr, pool, err := ipam.Next(pools, used)
		if err != nil {
			return netip.Addr{}, netip.Prefix{}, types.NewError(ErrPoolExhausted, "allocate address", err.Error())
		}
		pod.Addresses = []netip.Prefix{ipam.Host(addr)}
		err = registerOnce(ctx, reg, pod, rollback)
		if errors.Is(err, registry.ErrConflict) {
			used[addr] = true
			continue
		}
		return addr, pool, err
	}
	return netip.Addr{}, netip.Prefix{}, types.NewError(types.ErrTryAgainLater, "allocate address",
		fmt.Sprintf("lost %d allocation races in a row", maxConflicts))
}

// registerOnce registers the pod and pushes its removal on the rollback
// stack. A conflict is returned bare so allocate can retry.
func registerOnce(ctx context.Context, reg *registry.Client, pod registry.Pod, rollback *undo) error {
	err := reg.Register(ctx, pod)
	if errors.Is(err, registry.ErrConflict) {
		return err
	}
	if err != nil {
		return registryError("register pod", err)
	}
	rollback.push(func() error {
		// The ADD's own deadline may be what failed it: give the
		// removal a fresh one.
		c, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer cancel()
		return reg.Remove(c, pod.ContainerID, pod.IfName)
	})
	return nil
}
