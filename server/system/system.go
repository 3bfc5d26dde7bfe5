// Package system is the daemon's system component: it keeps
// /kedge/system/state current, the applied node identity (config where
// set, else the daemon's own), the build and when this daemon started. It
// contributes no posture step.
package system

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// Config is what a Component is built from.
type Config struct {
	Store  reconcile.Source
	Logger *slog.Logger
	// Node is the daemon's own node name, shown while the tree sets none.
	Node string
	// Version names the build (Version() when empty).
	Version string
	// Boot is when the daemon started.
	Boot time.Time
}

// Component publishes the system state. Create it with New, start it once
// with Start, and Close it.
type Component struct {
	cfg    Config
	rec    *reconcile.Reconciler[state]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the component; nothing runs until Start.
func New(c Config) *Component {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = Version()
	}
	pub := publisher{st: c.Store, node: c.Node, version: c.Version, boot: c.Boot}
	rec := reconcile.New[state](c.Store, intent, pub, reconcile.Options[state]{
		Name: "system", Logger: c.Logger,
		Prefixes: []string{kedgepath.Root().Kedge().System().Config().SchemaPath()}})
	return &Component{cfg: c, rec: rec}
}

// Start keeps the state current until ctx ends or Close.
func (c *Component) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Go(func() {
		if err := c.rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.cfg.Logger.Error("system state publisher stopped", "err", err)
		}
	})
	return nil
}

// Close stops the publisher.
func (c *Component) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

// state is what /kedge/system/state shows of the config.
type state struct {
	nodeName, cluster string
	role              kedgepath.NodeRole
}

func intent(t *tree.Tree) (state, error) {
	c := kedgetree.Of(t).Kedge().System().Config()
	node, _ := c.NodeName()
	cluster, _ := c.Cluster()
	role, _ := c.Role()
	return state{nodeName: node, cluster: cluster, role: role}, nil
}

// publisher writes /kedge/system/state; it is the "backend" of the
// reconciler over /kedge/system/config.
type publisher struct {
	st      reconcile.Source
	node    string
	version string
	boot    time.Time
}

func (p publisher) Set(ctx context.Context, s state) error {
	st := kedgepath.Root().Kedge().System().State()
	node := s.nodeName
	if node == "" {
		node = p.node
	}
	ops := []store.Op{
		store.Update(st.NodeName(), node),
		store.Update(st.Version(), p.version),
		store.Update(st.BootTime(), uint64(p.boot.UnixNano())),
	}
	if s.cluster == "" {
		ops = append(ops, store.Delete(st.Cluster()))
	} else {
		ops = append(ops, store.Update(st.Cluster(), s.cluster))
	}
	if s.role == "" {
		ops = append(ops, store.Delete(st.Role()))
	} else {
		ops = append(ops, store.Update(st.Role(), s.role))
	}
	_, err := p.st.CommitState(ctx, ops)
	return err
}

// Version names this binary (see package buildinfo: the Makefile stamps
// it; otherwise the module version or VCS revision).
func Version() string { return buildinfo.Version() }
