package plugin

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/guildhouse-co/kedge/cni/registry"
)

// Check is CNI CHECK: the registration exists and matches, and inside the
// netns the interface carries the registered addresses and default routes.
func Check(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "check needs prevResult", "")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "convert prevResult", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.timeout())
	defer cancel()
	reg, err := dial(conf)
	if err != nil {
		return err
	}
	defer reg.Close()
	pods, err := reg.Pods(ctx)
	if err != nil {
		return registryError("list pods", err)
	}
	var pod *registry.Pod
	for i := range pods {
		if pods[i].ContainerID == args.ContainerID && pods[i].IfName == args.IfName {
			pod = &pods[i]
		}
	}
	if pod == nil {
		return types.NewError(types.ErrUnknownContainer, "pod not registered", args.ContainerID+"/"+args.IfName)
	}
	if pod.Netns != args.Netns {
		return types.NewError(ErrRegistry, "registered netns differs", fmt.Sprintf("%q vs %q", pod.Netns, args.Netns))
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "open netns "+args.Netns, err.Error())
	}
	defer netns.Close()
	var gws []netip.Addr
	for _, r := range prev.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.GW != nil {
			if g, ok := netip.AddrFromSlice(r.GW); ok {
				gws = append(gws, g.Unmap())
			}
		}
	}
	if !ownsInterface(prev, args) {
		return nil // chained behind another plugin: its interface, its CHECK
	}
	if err := checkLink(netns, args.IfName, pod.Addresses, gws); err != nil {
		return types.NewError(ErrLink, "check interface", err.Error())
	}
	return nil
}

// ownsInterface reports whether prevResult names our host veth, i.e. we
// created the interface rather than being chained behind its creator.
func ownsInterface(prev *current.Result, args *skel.CmdArgs) bool {
	want := HostVethName(args.ContainerID, args.IfName)
	for _, itf := range prev.Interfaces {
		if itf.Name == want && itf.Sandbox == "" {
			return true
		}
	}
	return false
}

func ownsResult(conf *NetConf, args *skel.CmdArgs) bool {
	prev, err := current.NewResultFromResult(conf.PrevResult)
	return err == nil && ownsInterface(prev, args)
}
