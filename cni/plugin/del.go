package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/guildhouse-co/kedge/cni/registry"
)

const (
	rollbackTimeout = 2 * time.Second
	statusTimeout   = 500 * time.Millisecond
)

// dial opens the registry client, mapping an absent daemon to "try again
// later".
func dial(conf *NetConf) (*registry.Client, error) {
	reg, err := registry.Dial(conf.Socket)
	if err != nil {
		return nil, registryError("reach daemon", err)
	}
	return reg, nil
}

// registryError turns a registry error into the CNI error a runtime acts
// on: unreachable means 11 (try again later), anything else is ours.
func registryError(msg string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, registry.ErrUnavailable) {
		return types.NewError(types.ErrTryAgainLater, msg+": kedge daemon unavailable", err.Error())
	}
	return types.NewError(ErrRegistry, msg, err.Error())
}

// Del is CNI DEL: remove the veth (if we made one), release a delegated
// allocation, and remove the registration. Each step tolerates "already
// gone", so DEL is idempotent and works after the netns or the pod left.
func Del(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.timeout())
	defer cancel()
	var errs []error
	// The runtime hands DEL the cached ADD result as prevResult whether or
	// not we were chained; it names our host veth when we made the pair.
	if conf.PrevResult == nil || ownsResult(conf, args) {
		if err := deleteHostVeth(HostVethName(args.ContainerID, args.IfName)); err != nil {
			errs = append(errs, types.NewError(ErrLink, "delete veth", err.Error()))
		}
		if !builtinIPAM(conf) {
			if err := invoke.DelegateDel(ctx, conf.IPAM.Type, args.StdinData, nil); err != nil {
				errs = append(errs, types.NewError(ErrDelegate, "delegated ipam del", err.Error()))
			}
		}
	}
	reg, err := dial(conf)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer reg.Close()
	if err := reg.Remove(ctx, args.ContainerID, args.IfName); err != nil {
		errs = append(errs, registryError("remove pod", err))
	}
	if len(errs) == 1 {
		return errs[0] // keep its CNI code
	}
	return errors.Join(errs...)
}
