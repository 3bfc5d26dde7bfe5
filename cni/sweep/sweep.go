// Package sweep is the daemon's leak sweeper for pod registrations.
// containerd never calls CNI GC, and a DEL that failed or never came (a
// reboot, a crashed runtime) leaves a /kedge/pods entry, and with it an
// address of the built-in allocator, behind for good. The daemon runs a
// Sweeper periodically: an entry whose network namespace no longer exists
// and whose host veth is gone is removed.
//
// Both conditions must hold, because either alone can be transiently true
// during a healthy ADD (the netns path is bind-mounted by the runtime
// before ADD; the veth appears during ADD) and because a netns path may
// be invisible from the daemon's mount namespace while the pod lives: a
// surviving host veth proves it does.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/guildhouse-co/kedge/cni/registry"
)

// Registry is what the sweeper needs from the pod registry; the daemon
// passes a *registry.Client on its own socket, tests a fake.
type Registry interface {
	// Pods lists every registered attachment.
	Pods(ctx context.Context) ([]registry.Pod, error)
	// Remove deletes one attachment; removing a missing one succeeds.
	Remove(ctx context.Context, containerID, ifname string) error
}

// Sweeper removes leaked registrations. Its zero value is not usable:
// Registry is required; the probes default to the host's view.
type Sweeper struct {
	Registry Registry
	// NetnsExists reports whether a pod's netns path still exists
	// (default: os.Stat succeeds).
	NetnsExists func(path string) bool
	// LinkExists reports whether a host interface exists (default:
	// net.InterfaceByName in the daemon's network namespace).
	LinkExists func(name string) bool
	Log        *slog.Logger
}

// Sweep runs one pass and returns the ids ("container-id/ifname") it
// removed. Failures to remove single entries are joined; the pass goes on.
func (s *Sweeper) Sweep(ctx context.Context) (removed []string, err error) {
	if s.Registry == nil {
		return nil, errors.New("sweep pods: no registry")
	}
	nsOK, linkOK, log := s.NetnsExists, s.LinkExists, s.Log
	if nsOK == nil {
		nsOK = func(p string) bool { _, err := os.Stat(p); return err == nil }
	}
	if linkOK == nil {
		linkOK = func(n string) bool { _, err := net.InterfaceByName(n); return err == nil }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pods, err := s.Registry.Pods(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var errs []error
	for _, p := range pods {
		if p.Netns != "" && nsOK(p.Netns) {
			continue
		}
		if p.HostIfName != "" && linkOK(p.HostIfName) {
			continue
		}
		if err := s.Registry.Remove(ctx, p.ContainerID, p.IfName); err != nil {
			errs = append(errs, fmt.Errorf("remove leaked pod %s: %w", p.ID(), err))
			continue
		}
		log.Info("removed leaked pod registration", "pod", p.ID(), "netns", p.Netns, "host_ifname", p.HostIfName, "addresses", p.Addresses)
		removed = append(removed, p.ID())
	}
	return removed, errors.Join(errs...)
}
