package server

import (
	"context"
	"net/netip"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/cni/sweep"
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
		k := t.Root().Sub("kedge")
		if k == nil || k.Sub("pods") == nil {
			return nil
		}
		k.Sub("pods").Entries("pod", func(in *tree.Inst) bool {
			keys := in.Keys()
			pod := registry.Pod{ContainerID: keys[0].Str(), IfName: keys[1].Str()}
			if c := in.Sub("config"); c != nil {
				pod.Netns = c.Get("netns").Str()
				pod.HostIfName = c.Get("host-ifname").Str()
				pod.Namespace, pod.Name = c.Get("namespace").Str(), c.Get("name").Str()
				for _, a := range c.Get("addresses").Elems() {
					if pfx, err := netip.ParsePrefix(a.Str()); err == nil {
						pod.Addresses = append(pod.Addresses, pfx)
					}
				}
			}
			pods = append(pods, pod)
			return true
		})
		return nil
	})
	return pods, err
}

func (p storePods) Remove(ctx context.Context, containerID, ifname string) error {
	_, err := p.st.Commit(ctx, []store.Op{{Kind: store.OpDelete, Path: []*gpb.PathElem{
		{Name: "kedge"}, {Name: "pods"},
		{Name: "pod", Key: map[string]string{"container-id": containerID, "ifname": ifname}},
	}}})
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
