package server

import (
	"context"
	"net/netip"
	"time"

	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/cni/sweep"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// SweepEvery is how often the daemon looks for pod registrations whose
// network namespace and host veth are both gone. containerd never calls
// CNI GC, so without this, failed DELs and reboots leak addresses.
const SweepEvery = time.Minute

// storePods is the sweeper's view of /kedge/pods, read from and written to
// the store directly (the daemon is the store's owner).
type storePods struct{ st *store.Store }

func (p storePods) Pods(context.Context) ([]registry.Pod, error) {
	var pods []registry.Pod
	err := p.st.Read(func(t *tree.Tree) error {
		for in := range kedgetree.Of(t).Kedge().Pods().Pod().All() {
			cid, _ := in.ContainerId()
			ifname, _ := in.Ifname()
			pod := registry.Pod{ContainerID: cid, IfName: ifname}
			c := in.Config()
			pod.Netns, _ = c.Netns()
			pod.HostIfName, _ = c.HostIfname()
			pod.Namespace, _ = c.Namespace()
			pod.Name, _ = c.Name()
			for _, a := range c.Addresses() {
				if pfx, err := netip.ParsePrefix(a); err == nil {
					pod.Addresses = append(pod.Addresses, pfx)
				}
			}
			pods = append(pods, pod)
		}
		return nil
	})
	return pods, err
}

func (p storePods) Remove(ctx context.Context, containerID, ifname string) error {
	_, err := p.st.Commit(ctx, []store.Op{store.Delete(kedgepath.Root().Kedge().Pods().Pod(containerID, ifname))})
	return err
}

// sweepPods runs the leak sweep every SweepEvery until ctx ends.
func (d *Daemon) sweepPods(ctx context.Context) {
	s := &sweep.Sweeper{Registry: storePods{d.st}, Log: d.log.With("component", "pod-sweep")}
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			removed, err := s.Sweep(ctx)
			if err != nil {
				d.log.Warn("sweep leaked pod registrations", "err", err)
			}
			if len(removed) > 0 {
				d.log.Info("removed leaked pod registrations", "pods", removed)
			}
		}
	}
}
