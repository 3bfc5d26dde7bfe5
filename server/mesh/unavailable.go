package mesh

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// UnavailableConfig is what an Unavailable is built from.
type UnavailableConfig struct {
	Store  reconcile.Source
	Logger *slog.Logger
	// Public is the node's public key; zero when it could not be loaded
	// (then Reason says why).
	Public wgmesh.Key
	// Reason says why the mesh cannot run here.
	Reason string
}

// Unavailable is the mesh component of a node whose mesh cannot run (the
// dataplane is off, the machine has neither WireGuard nor TUN, the key or
// the backend failed to open): it hosts nothing and publishes the node's
// own mesh state instead, from the start: the public key, the interface
// and listen port the tree asks for (following its changes), status
// unavailable and why. Create it with NewUnavailable, Start it once and
// Close it.
type Unavailable struct {
	cfg    UnavailableConfig
	pub    *unavailablePublisher
	rec    *reconcile.Reconciler[wgmesh.Config]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewUnavailable builds the component; nothing runs until Start.
func NewUnavailable(c UnavailableConfig) *Unavailable {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	p := &unavailablePublisher{st: c.Store, pub: c.Public, why: c.Reason}
	rec := reconcile.New[wgmesh.Config](c.Store, idleIntent, p, reconcile.Options[wgmesh.Config]{
		Name: "mesh-state", Logger: c.Logger, Prefixes: meshConfigPrefixes[:1]})
	return &Unavailable{cfg: c, pub: p, rec: rec}
}

// Start publishes the state before it returns, then keeps it following
// the tree until ctx ends or Close.
func (u *Unavailable) Start(ctx context.Context) error {
	var cfg wgmesh.Config
	if err := u.cfg.Store.Read(func(t *tree.Tree) error {
		var err error
		cfg, err = idleIntent(t)
		return err
	}); err != nil {
		return err
	}
	if err := u.pub.Set(ctx, cfg); err != nil {
		u.cfg.Logger.Warn("publish mesh state", "err", err)
	}
	ctx, u.cancel = context.WithCancel(ctx)
	u.wg.Go(func() {
		if err := u.rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			u.cfg.Logger.Error("mesh state publisher stopped", "err", err)
		}
	})
	return nil
}

// Close stops following the tree.
func (u *Unavailable) Close() error {
	if u.cancel != nil {
		u.cancel()
	}
	u.wg.Wait()
	return nil
}

// idleIntent is the device /kedge/mesh/config describes, with the
// defaults of a tree that names no interface or port.
func idleIntent(t *tree.Tree) (wgmesh.Config, error) {
	base := wgmesh.Config{Interface: wgmesh.DefaultInterface, ListenPort: wgmesh.DefaultListenPort}
	return intent.Mesh(t, accord.Current(t), base), nil
}

// unavailablePublisher writes the idle state, only what changed.
type unavailablePublisher struct {
	st  reconcile.Source
	pub wgmesh.Key
	why string

	mu      sync.Mutex
	written map[string]meshLeaf
}

func (p *unavailablePublisher) Set(ctx context.Context, cfg wgmesh.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]meshLeaf{}
	for _, l := range idleState(p.pub, cfg, meshUnavailable, p.why) {
		want[tree.RenderPath(l.path)] = l
	}
	var ops []store.Op
	for k, l := range want {
		if old, ok := p.written[k]; !ok || old.text != l.text {
			ops = append(ops, store.Op{Kind: store.OpUpdate, Path: l.path, Val: l.val})
		}
	}
	for k, l := range p.written {
		if _, ok := want[k]; !ok {
			ops = append(ops, store.Op{Kind: store.OpDelete, Path: l.path})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := p.st.CommitState(ctx, ops); err != nil {
		p.written = nil
		return err
	}
	p.written = want
	return nil
}
