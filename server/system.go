package server

import (
	"context"
	"errors"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// systemState is what /kedge/system/state shows: the applied node
// identity (config where set, else the daemon's own), the build, and when
// this daemon started.
type systemState struct {
	nodeName, cluster, role string
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
	base := []*gpb.PathElem{{Name: "kedge"}, {Name: "system"}, {Name: "state"}}
	leaf := func(name string) []*gpb.PathElem {
		return append(append([]*gpb.PathElem(nil), base...), &gpb.PathElem{Name: name})
	}
	str := func(v string) *gpb.TypedValue { return tree.Typed(tree.String(v)) }
	node := s.nodeName
	if node == "" {
		node = p.node
	}
	ops := []store.Op{
		{Kind: store.OpUpdate, Path: leaf("node-name"), Val: str(node)},
		{Kind: store.OpUpdate, Path: leaf("version"), Val: str(p.version)},
		{Kind: store.OpUpdate, Path: leaf("boot-time"), Val: tree.Typed(tree.Uint(uint64(p.boot.UnixNano())))},
	}
	for _, kv := range [][2]string{{"cluster", s.cluster}, {"role", s.role}} {
		if kv[1] == "" {
			ops = append(ops, store.Op{Kind: store.OpDelete, Path: leaf(kv[0])})
			continue
		}
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: leaf(kv[0]), Val: str(kv[1])})
	}
	_, err := p.st.CommitState(ctx, ops)
	return err
}

func systemIntent(t *tree.Tree) (systemState, error) {
	var s systemState
	if k := t.Root().Sub("kedge"); k != nil {
		if sys := k.Sub("system"); sys != nil {
			if c := sys.Sub("config"); c != nil {
				s = systemState{nodeName: c.Get("node-name").Str(), cluster: c.Get("cluster").Str(), role: c.Get("role").Str()}
			}
		}
	}
	return s, nil
}

// buildVersion names this binary (see package buildinfo).
func buildVersion() string { return buildinfo.Version() }

// startSystem keeps /kedge/system/state current until ctx ends.
func (d *Daemon) startSystem(ctx context.Context, dp *dataplane) {
	pub := systemPublisher{st: d.st, node: d.cfg.NodeName, version: buildVersion(), boot: time.Now()}
	rec := reconcile.New[systemState](d.st, systemIntent, pub, reconcile.Options[systemState]{
		Name: "system", Logger: d.log.With("component", "system"), Prefixes: []string{"/kedge/system/config"}})
	dp.wg.Add(1)
	go func() {
		defer dp.wg.Done()
		if err := rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("system state publisher stopped", "err", err)
		}
	}()
}
