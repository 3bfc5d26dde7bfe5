// Package pods is the daemon's pod registry housekeeping: every Every it
// removes the /kedge/pods registrations whose network namespace and host
// veth are both gone (cni/sweep decides which). containerd never calls CNI
// GC, so without this, failed DELs and reboots leak addresses. It
// contributes no posture step.
package pods

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/cni/sweep"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// DefaultEvery is how often the sweeper looks for leaked registrations.
const DefaultEvery = time.Minute

// Store is what the sweeper needs of the tree store (*store.Store): it
// reads /kedge/pods and deletes from it directly (the daemon owns the
// store).
type Store interface {
	Read(fn func(t *tree.Tree) error) error
	Commit(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// Config is what a Sweeper is built from.
type Config struct {
	Store  Store
	Logger *slog.Logger
	Every  time.Duration // DefaultEvery when zero
	// NetnsExists and LinkExists, when set, replace cni/sweep's checks of
	// a registration's namespace and host veth (tests).
	NetnsExists, LinkExists func(string) bool
}

// Sweeper is the leak sweep. Create it with New, start it once with
// Start, and Close it.
type Sweeper struct {
	cfg    Config
	s      *sweep.Sweeper
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the sweeper; nothing runs until Start.
func New(c Config) *Sweeper {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	return &Sweeper{cfg: c, s: &sweep.Sweeper{Registry: storePods{c.Store}, Log: c.Logger,
		NetnsExists: c.NetnsExists, LinkExists: c.LinkExists}}
}

// Start sweeps every Every until ctx ends or Close.
func (s *Sweeper) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() {
		t := time.NewTicker(s.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.Sweep(ctx)
			}
		}
	})
	return nil
}

// Sweep runs one sweep now and returns the registrations it removed.
func (s *Sweeper) Sweep(ctx context.Context) []string {
	removed, err := s.s.Sweep(ctx)
	if err != nil {
		s.cfg.Logger.Warn("sweep leaked pod registrations", "err", err)
	}
	if len(removed) > 0 {
		s.cfg.Logger.Info("removed leaked pod registrations", "pods", removed)
	}
	return removed
}

// Close stops the sweeper.
func (s *Sweeper) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

// storePods is the sweeper's view of /kedge/pods, read from and written to
// the store directly.
type storePods struct{ st Store }

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
