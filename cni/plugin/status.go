package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Status is CNI STATUS: ready when the daemon answers within 500 ms.
func Status(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(conf.timeout(), statusTimeout))
	defer cancel()
	reg, err := dial(conf)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Ping(ctx); err != nil {
		return registryError("ping daemon", err)
	}
	return nil
}

// GC is CNI GC: remove every registration (and so its built-in
// allocation) whose attachment is not in cni.dev/valid-attachments, and
// the host veth we would have made for it. One kedge network per node is
// assumed: registrations do not record the network name.
func GC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
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
	valid := map[[2]string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	pods, err := reg.Pods(ctx)
	if err != nil {
		return registryError("list pods", err)
	}
	var errs []error
	for _, p := range pods {
		if valid[[2]string{p.ContainerID, p.IfName}] {
			continue
		}
		if p.HostIfName == HostVethName(p.ContainerID, p.IfName) {
			if err := deleteHostVeth(p.HostIfName); err != nil {
				errs = append(errs, err)
			}
		}
		if err := reg.Remove(ctx, p.ContainerID, p.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	if !builtinIPAM(conf) {
		if err := invoke.DelegateGC(ctx, conf.IPAM.Type, args.StdinData, nil); err != nil {
			errs = append(errs, fmt.Errorf("delegated ipam gc: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(ErrRegistry, "gc", err.Error())
	}
	return nil
}
