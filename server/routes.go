package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// Tree paths the route reconciler follows. Config under routes, pods and
// accords changes the intent; of state only the effective level does, so
// the state this reconciler writes (route and pod status) never triggers
// it again.
var (
	routeConfigPrefixes = []string{"/kedge/routes", "/kedge/pods", "/kedge/accords"}
	routeStatePrefixes  = []string{"/kedge/posture/state/effective-level"}
)

// startRoutes opens the route backend in the daemon's namespace, starts
// its reconciler (tree changes, under the accord in effect) and returns
// its posture step (transitions, under the target accord). Both go
// through one routeApplier, so the kernel and the routes' state are
// written by one Set at a time.
//
// Restarts cause no route flap: route.New adopts Kedge's routes in the
// kernel, and the first reconcile runs on the whole tree restored from
// disk, so routes still configured cause no kernel message and stale ones
// go only after every add of that first Set.
func (d *Daemon) startRoutes(dp *dataplane, on bool, avail map[string]bool) ([]posture.Step, error) {
	if !on || !avail["route"] {
		return nil, nil
	}
	log := d.log.With("component", "routes")
	b, err := route.New(route.Options{NetNS: d.cfg.NetNS, Logger: log})
	if err != nil {
		d.log.Warn("route backend unavailable", "netns", d.cfg.NetNS, "err", err)
		return nil, nil
	}
	ap := &routeApplier{b: b, st: d.st, log: log}
	d.setKernelRoutes(b.KernelRoutes)
	rec := reconcile.New[intent.RouteSet](d.st, nil, ap, routeOptions(log, &intent.RouteCache{}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if !dp.waitReady(ctx) {
			return
		}
		if err := rec.Run(ctx); err != nil {
			log.Error("route reconciler stopped", "err", err)
		}
	}()
	// What others do to Kedge's routes and rules (delete one, take a link
	// down) wakes the reconciler, which puts them back: the kernel is
	// repaired without waiting for the next change to the tree.
	go func() {
		defer wg.Done()
		if !dp.waitReady(ctx) {
			return
		}
		if err := b.Watch(ctx, rec.Kick); err != nil {
			log.Error("route drift watch stopped", "err", err)
		}
	}()
	// Closers run last to first: stop the reconciler and the watch, then
	// close the backend (which leaves the routes in the kernel).
	dp.closers = append(dp.closers, b.Close, func() error {
		cancel()
		wg.Wait()
		return nil
	})
	d.log.Info("route backend", "netns", d.cfg.NetNS, "protocol", route.DefaultProtocol)
	return []posture.Step{posture.IntentStep[intent.RouteSet]("routes", posture.StageRoutes, d.st, intent.Routes, stepApplier{ap})}, nil
}

// routeOptions configure the route reconciler: its intent is the routes
// under the accord of the level in effect, through a cache that follows
// the change feed (the posture step computes its own, under the target
// accord), timed at debug level since at 100,000 routes it is a visible
// part of a reconcile.
func routeOptions(log *slog.Logger, c *intent.RouteCache) reconcile.Options[intent.RouteSet] {
	return reconcile.Options[intent.RouteSet]{
		Name: "routes", Logger: log, Prefixes: routeConfigPrefixes, StatePrefixes: routeStatePrefixes,
		IntentAt: func(t *tree.Tree, seq uint64) (intent.RouteSet, error) {
			start := time.Now()
			s, err := c.Routes(t, accord.Current(t), seq)
			log.Debug("routes intent", "routes", len(s.Config.Routes), "withheld", len(s.Withheld), "took", time.Since(start))
			return s, err
		},
		Observe: c.Observe,
		Lost:    c.Lost,
	}
}

// routeBackend is what the applier needs of the route backend
// (*route.Backend, or routetest.Fake in tests).
type routeBackend interface {
	Set(ctx context.Context, cfg route.Config) error
	// CopyStatus copies the outcome of the last Set (per route, in
	// Config order) into dst, reusing its slices.
	CopyStatus(dst *route.Status)
}

// stateCommitter reads the tree and writes state (*store.Store).
type stateCommitter interface {
	Read(fn func(t *tree.Tree) error) error
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// routeApplier applies a RouteSet to the backend and writes each route's
// and pod's outcome into the tree's state, in one state commit per Set.
type routeApplier struct {
	b   routeBackend
	st  stateCommitter
	log *slog.Logger

	mu sync.Mutex // serialises Set: the reconciler and the posture step share it
	// written is the status and reason last committed per entry, so a Set
	// writes only what changed (one route out of 100,000, not all).
	written map[stateKey]stateVal
	// marks is the routes list's entries as last written, in order (see
	// stateOps); spareMarks is its other buffer.
	marks, spareMarks []stateMark
	status            route.Status // the backend's last outcome, its slices reused
}

// Set applies s and records the outcome. It returns the backend's error:
// per-route failures (also in state) included, so the reconciler retries
// them (a gateway may become reachable).
func (a *routeApplier) Set(ctx context.Context, s intent.RouteSet) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	err := a.b.Set(ctx, s.Config)
	kernel := time.Since(start)
	if ctx.Err() != nil {
		return err
	}
	if err != nil && !itemErrorsOnly(err) {
		// The backend's Status is not about this Set; the state keeps the
		// last known outcome until the retry succeeds.
		return err
	}
	a.b.CopyStatus(&a.status)
	st := a.status
	ops := a.stateOps(s, st)
	opsDone := time.Now()
	if len(ops) > 0 {
		if serr := a.commitState(ctx, ops); serr != nil {
			a.written, a.marks = nil, nil // unknown what the tree holds: write everything next time
			if ctx.Err() == nil {
				a.log.Warn("write route state", "err", serr)
			}
			return err
		}
	}
	a.log.Debug("routes applied", "routes", len(s.Config.Routes), "added", st.Added, "removed", st.Removed,
		"sends", st.Sends, "kernel", kernel, "state_ops", len(ops), "state_build", opsDone.Sub(start)-kernel,
		"state_commit", time.Since(opsDone))
	return err
}

// commitState commits ops. State can only be written to entries that
// exist, so an entry deleted since the intent was read fails the whole
// commit; then the ops of entries that are gone are dropped and the rest
// committed once more. (The deletion also triggers another reconcile.)
func (a *routeApplier) commitState(ctx context.Context, ops []store.Op) error {
	_, err := a.st.CommitState(ctx, ops)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var live []store.Op
	if rerr := a.st.Read(func(t *tree.Tree) error {
		for _, op := range ops {
			// The entry is the path without its state/leaf tail.
			if _, ok, _ := t.Lookup(op.Path[:len(op.Path)-2]); ok {
				live = append(live, op)
			}
		}
		return nil
	}); rerr != nil {
		return rerr
	}
	if len(live) == len(ops) {
		return err
	}
	_, err = a.st.CommitState(ctx, live)
	return err
}

// stepApplier is the routeApplier as a posture step: a route that fails
// (bad gateway, unknown device) is in its state and retried by the
// reconciler; it does not fail the posture transition.
type stepApplier struct{ a *routeApplier }

func (s stepApplier) Set(ctx context.Context, rs intent.RouteSet) error {
	err := s.a.Set(ctx, rs)
	if err != nil && itemErrorsOnly(err) {
		return nil
	}
	return err
}

// itemErrorsOnly reports whether err is only the failures of single
// routes, rules or interfaces, which Status records per item.
func itemErrorsOnly(err error) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *route.RouteError
		var ru *route.RuleError
		var ie *route.InterfaceError
		if !errors.As(e, &re) && !errors.As(e, &ru) && !errors.As(e, &ie) {
			return false
		}
	}
	return len(errs) > 0
}
