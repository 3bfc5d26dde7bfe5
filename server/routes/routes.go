// Package routes is the daemon's routes component: it keeps the route
// backend (Kedge's routes, policy rules and underlay interfaces in the
// node's namespace) matching /kedge/routes, the pods' host routes and the
// overlay routes to mesh peers, under the accord of the posture level,
// and writes each route's and pod's outcome into their state.
//
// One applier does every Set and state write: the reconciler (tree
// changes, under the accord in effect), the drift watch (someone else
// changed Kedge's routes; the reconciler puts them back) and the posture
// step (transitions, under the target accord) all go through it, one at a
// time.
//
// Restarts cause no route flap: the kernel backend adopts Kedge's routes,
// and the first reconcile runs on the whole tree restored from disk, so
// routes still configured cause no kernel message and stale ones go only
// after every add of that first Set.
package routes

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// Tree paths the route reconciler follows. Config under routes, pods,
// accords and underlay VLANs (this node's VLAN interfaces) changes the
// intent; of state only the effective level does, so
// the state this reconciler writes (route and pod status) never triggers
// it again.
var (
	configPrefixes = []string{kedgepath.Root().Kedge().Routes().SchemaPath(), kedgepath.Root().Kedge().Pods().SchemaPath(),
		kedgepath.Root().Kedge().Accords().SchemaPath(), kedgepath.Root().Kedge().Underlay().Vlans().SchemaPath(),
		kedgepath.Root().Kedge().Aft().SchemaPath()}
	statePrefixes = []string{kedgepath.Root().Kedge().Posture().State().EffectiveLevel().SchemaPath()}
)

// Store is what the component needs of the tree store (*store.Store).
type Store interface {
	reconcile.Source
}

// Config is what a Component is built from.
type Config struct {
	// Backend programs the routes; the Component owns it and closes it.
	Backend route.Backend
	Store   Store
	Logger  *slog.Logger
	// Ready, when set, is waited for before the first reconcile and the
	// drift watch: the posture engine publishes the effective level
	// (state, not persisted) once it has converged, and a reconciler that
	// ran first would briefly apply the configured level even when the
	// BPF map holds a stricter one. It returns false when ctx ends.
	Ready func(ctx context.Context) bool
	// Retry bounds the reconciler's backoff after a failed Set (zero:
	// the reconcile package's defaults).
	RetryMin, RetryMax time.Duration
}

// bulkChunk is how many changed route entries the intent reads per part
// of a bulk change: small enough that the first routes reach the kernel
// soon after the commit, big enough that the per-part costs (the pods and
// peers read again, a pass over the entries' order) stay a few percent.
const bulkChunk = 8192

// Component is the routes component. Create it with New, start it once
// with Start, and Close it.
type Component struct {
	cfg    Config
	ap     *applier
	rec    *reconcile.Reconciler[intent.RouteSet]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the component; nothing runs until Start.
func New(c Config) *Component {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// A bulk change (a Set of 100,000 routes) reaches the kernel in
	// parts of this many entries, each read while the one before is
	// programmed.
	cache := &intent.RouteCache{Chunk: bulkChunk}
	ap := newApplier(c.Backend, c.Store, c.Logger, cache)
	o := options(c.Logger, cache)
	o.RetryMin, o.RetryMax = c.RetryMin, c.RetryMax
	return &Component{cfg: c, ap: ap, rec: reconcile.New[intent.RouteSet](c.Store, nil, ap, o)}
}

// Step is the component's posture step (stage routes): the routes under
// the target accord, through the same applier. A route that fails (bad
// gateway, unknown device) is in its state and retried by the reconciler;
// it does not fail the transition.
func (c *Component) Step() posture.Step {
	return posture.IntentStep[intent.RouteSet]("routes", posture.StageRoutes, c.cfg.Store, intent.Routes, stepApplier{c.ap})
}

// Start runs the reconciler and the drift watch until ctx ends or Close.
func (c *Component) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if !c.ready(ctx) {
			return
		}
		if err := c.rec.Run(ctx); err != nil {
			c.cfg.Logger.Error("route reconciler stopped", "err", err)
		}
	}()
	// What others do to Kedge's routes and rules (delete one, take a link
	// down) wakes the reconciler, which puts them back: the kernel is
	// repaired without waiting for the next change to the tree.
	go func() {
		defer c.wg.Done()
		if !c.ready(ctx) {
			return
		}
		if err := c.cfg.Backend.Watch(ctx, c.rec.Kick); err != nil {
			c.cfg.Logger.Error("route drift watch stopped", "err", err)
		}
	}()
	return nil
}

func (c *Component) ready(ctx context.Context) bool {
	return c.cfg.Ready == nil || c.cfg.Ready(ctx)
}

// Close stops the loops, then closes the backend, which leaves the routes
// in the kernel.
func (c *Component) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	c.ap.wait()
	return c.cfg.Backend.Close()
}

// Stats are the reconciler's counters (tests, metrics).
func (c *Component) Stats() reconcile.Stats { return c.rec.Stats() }

// ApplyStats count the changes patched in and the whole Sets (tests,
// metrics).
func (c *Component) ApplyStats() ApplyStats { return c.ap.applyStats() }

// options configure the route reconciler: its intent is the routes under
// the accord of the level in effect, through a cache that follows the
// change feed and returns what changed when it can (RouteCache.Changes) (the posture step computes its own, under the target
// accord), timed at debug level since at 100,000 routes it is a visible
// part of a reconcile.
func options(log *slog.Logger, c *intent.RouteCache) reconcile.Options[intent.RouteSet] {
	return reconcile.Options[intent.RouteSet]{
		Name: "routes", Logger: log, Prefixes: configPrefixes, StatePrefixes: statePrefixes,
		IntentAt: func(t *tree.Tree, seq uint64) (intent.RouteSet, error) {
			start := time.Now()
			s, err := c.Changes(t, accord.Current(t), seq)
			s.Seq = seq
			if s.Delta != nil {
				log.Debug("routes intent", "put", len(s.Delta.Patch.Put), "del", len(s.Delta.Patch.Del), "took", time.Since(start))
			} else {
				log.Debug("routes intent", "routes", len(s.Config.Routes), "withheld", len(s.Withheld), "took", time.Since(start))
			}
			return s, err
		},
		Observe: c.Observe,
		Lost:    c.Lost,
	}
}
