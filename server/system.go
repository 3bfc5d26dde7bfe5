package server

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// systemState is what /kedge/system/state shows: the applied node
// identity (config where set, else the daemon's own), the build, and when
// this daemon started.
type systemState struct {
	nodeName, cluster string
	role              kedgepath.NodeRole
}

// systemPublisher writes /kedge/system/state; it is the "backend" of a
// reconciler over /kedge/system/config.
type systemPublisher struct {
	st      *store.Store
	node    string
	version string
	boot    time.Time
}

func (p systemPublisher) Set(ctx context.Context, s systemState) error {
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

func systemIntent(t *tree.Tree) (systemState, error) {
	c := kedgetree.Of(t).Kedge().System().Config()
	node, _ := c.NodeName()
	cluster, _ := c.Cluster()
	role, _ := c.Role()
	return systemState{nodeName: node, cluster: cluster, role: role}, nil
}

// buildVersion names this binary: the module version when built from a
// tagged module, else the VCS revision when known, else "devel".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return "devel"
}

// startSystem keeps /kedge/system/state current until ctx ends.
func (d *Daemon) startSystem(ctx context.Context, dp *dataplane) {
	pub := systemPublisher{st: d.st, node: d.cfg.NodeName, version: buildVersion(), boot: time.Now()}
	rec := reconcile.New[systemState](d.st, systemIntent, pub, reconcile.Options[systemState]{
		Name: "system", Logger: d.log.With("component", "system"),
		Prefixes: []string{kedgepath.Root().Kedge().System().Config().SchemaPath()}})
	dp.wg.Add(1)
	go func() {
		defer dp.wg.Done()
		if err := rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("system state publisher stopped", "err", err)
		}
	}()
}
