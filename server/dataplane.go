package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
	"github.com/guildhouse-co/kedge/server/hostlock"
	"github.com/guildhouse-co/kedge/server/mesh"
	"github.com/guildhouse-co/kedge/server/pods"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/probe"
	"github.com/guildhouse-co/kedge/server/routes"
	"github.com/guildhouse-co/kedge/server/system"
)

// component is one of the daemon's subsystems (routes, mesh, system
// state, the pod sweep): built with its dependencies, started with a
// context derived from Run's, closed on shutdown. Those that act on
// posture also contribute a posture.Step, which the wiring registers.
type component interface {
	Start(ctx context.Context) error
	Close() error
}

// dataplane is the part of the daemon that acts on the machine: the
// posture engine with the steps of the backends this machine allows, and
// the components that keep backends matching the tree. It only reads the
// store's change feed and writes state back; RPC handlers never reach it.
type dataplane struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	engine *posture.Engine
	// comps are started in order and closed in reverse; closers are the
	// backends no component owns (the VPP segment, the BPF map).
	comps   []component
	closers []func() error
	// ready closes once the engine has converged after start and
	// published the effective level. Components wait for it: the
	// effective level is state, not persisted, and a reconciler that ran
	// first would apply the configured level for a moment even when the
	// BPF map (which survives restarts) holds a stricter one.
	ready     chan struct{}
	readyOnce sync.Once
	// routesOn: the routes component runs, so gRIBI entries reach the
	// kernel and FIB acknowledgements can be given.
	routesOn bool
	// routes is that component, for its apply counts.
	routes *routes.Component
}

// readyTimeout bounds how long reconcilers wait for the engine; past it
// they start anyway (and the engine's own steps still apply the level).
const readyTimeout = 10 * time.Second

// waitReady blocks until the engine has converged, the timeout passes,
// or ctx ends (false).
func (dp *dataplane) waitReady(ctx context.Context) bool {
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case <-dp.ready:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// startDataplane opens the backends the probe allows, builds their
// components and the posture engine, and starts them all under ctx (Run's
// context). A backend that cannot open is logged and left out: the node
// keeps serving its tree, and its state says what is missing.
func (d *Daemon) startDataplane(ctx context.Context, probed probe.Report) error {
	cfg := d.cfg
	dp := &dataplane{ready: make(chan struct{})}
	var steps []posture.Step
	var levels posture.LevelSource
	on := cfg.Dataplane == "auto"

	bk := backendVerdicts{on: on}
	// Only backends whose host-wide resources the daemon holds (claims);
	// the others were left out with the reason logged.
	if on && cfg.ShmPath != "off" && probed.Shm.Available && d.claims.shm {
		w, err := segment.Open(cfg.ShmPath, segment.WithLogger(d.log))
		if err != nil {
			d.log.Warn("VPP governance segment unavailable", "path", cfg.ShmPath, "err", err)
			bk.failed(probed.Shm, err)
		} else {
			steps = append(steps, posture.ShmStep(w))
			dp.closers = append(dp.closers, w.Close)
			d.log.Info("VPP governance segment", "path", w.Path())
			bk.active(probed.Shm)
		}
	} else if on && cfg.ShmPath != "off" && probed.Shm.Available {
		bk.unclaimed(probed.Shm)
	} else {
		bk.off(probed.Shm, cfg.ShmPath == "off", "--shm-path off")
	}
	if on && cfg.BPFPinDir != "off" && probed.BPFMap.Available && d.claims.bpf {
		b, err := pinned.Open(pinned.WithPinDir(cfg.BPFPinDir), pinned.WithLogger(d.log))
		if err != nil {
			d.log.Warn("posture_level BPF map unavailable", "pin_dir", cfg.BPFPinDir, "err", err)
			bk.failed(probed.BPFMap, err)
		} else {
			steps = append(steps, posture.BPFMapStep(d.level1Allowlist(b), bpfmap.Config{CgroupPath: cfg.EnforceCgroup}))
			levels = b
			dp.closers = append(dp.closers, b.Close)
			d.log.Info("posture_level BPF map", "pin_dir", cfg.BPFPinDir, "enforce_cgroup", cfg.EnforceCgroup)
			bk.active(probed.BPFMap)
		}
	} else if on && cfg.BPFPinDir != "off" && probed.BPFMap.Available {
		bk.unclaimed(probed.BPFMap)
	} else {
		bk.off(probed.BPFMap, cfg.BPFPinDir == "off", "--bpf-pin-dir off")
	}
	// The handshake step runs after the VPP segment and the BPF map on
	// escalation (its stage places it); it touches no kernel state.
	if d.shell != nil {
		steps = append(steps, d.shell.svc.Step())
	}
	if on && probed.Route.Available && d.claims.route {
		if c := d.routes(dp); c != nil {
			steps = append(steps, c.Step())
			dp.comps = append(dp.comps, c)
			dp.routesOn, dp.routes = true, c
			bk.active(probed.Route)
		} else {
			bk.failed(probed.Route, errors.New("the route backend could not open (see the log)"))
		}
	} else if on && probed.Route.Available {
		bk.unclaimed(probed.Route)
	} else {
		bk.off(probed.Route, false, "")
	}
	// VLAN links are made by the route backend; the probe says whether
	// this kernel can.
	if on {
		bk.add(probed.VLAN, probed.VLAN.Available && probed.Route.Available)
	} else {
		bk.off(probed.VLAN, false, "")
	}
	// The mesh component runs whatever the machine allows: where the mesh
	// cannot run it publishes why (with the node's key) instead.
	mc, step := d.mesh(dp, probed)
	switch {
	case step != nil:
		steps = append(steps, step)
		bk.active(probed.WGMesh)
	case on && probed.WGMesh.Available:
		bk.failed(probed.WGMesh, errors.New("the mesh backend could not open (/kedge/mesh/state/error says why)"))
	default:
		bk.off(probed.WGMesh, false, "")
	}
	// The underlay touches no kernel state (it programs network devices
	// over gNMI): it runs whatever --dataplane says.
	u, err := d.underlay()
	if err != nil {
		dp.close()
		return err
	}
	steps = append(steps, u.Step())
	dp.comps = append(dp.comps, mc, u,
		system.New(system.Config{Store: d.st, Logger: d.log.With("component", "system"), Node: cfg.NodeName, Boot: time.Now(),
			Backends: bk.list}),
		pods.New(pods.Config{Store: d.st, Logger: d.log.With("component", "pod-sweep")}))
	steps = append(steps, d.notarySteps()...)

	eng, err := posture.New(d.st, posture.Options{Logger: d.log.With("component", "posture"), Steps: steps, LevelSource: levels,
		OnReady:  func() { dp.readyOnce.Do(func() { close(dp.ready) }) },
		OnReport: d.postureReports})
	if err != nil {
		dp.close()
		return fmt.Errorf("start posture engine: %w", err)
	}
	dp.engine = eng
	d.obs.watchEngine(eng, &dp.ready)
	ctx, dp.cancel = context.WithCancel(ctx)
	dp.wg.Go(func() {
		if err := eng.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("posture engine stopped", "err", err)
		}
	})
	for _, c := range dp.comps {
		if err := c.Start(ctx); err != nil {
			dp.close()
			return fmt.Errorf("start dataplane: %w", err)
		}
	}
	names := make([]string, 0, len(steps))
	for _, s := range steps {
		names = append(names, s.Name())
	}
	d.log.Info("posture engine running", "steps", names)
	d.dp = dp
	return nil
}

// routes opens the route backend in the daemon's namespace and builds the
// routes component over it (nil when the backend cannot open).
func (d *Daemon) routes(dp *dataplane) *routes.Component {
	log := d.log.With("component", "routes")
	b, err := kernel.New(kernel.Options{NetNS: d.cfg.NetNS, Logger: log})
	if err != nil {
		d.log.Warn("route backend unavailable", "netns", d.cfg.NetNS, "err", err)
		return nil
	}
	d.log.Info("route backend", "netns", d.cfg.NetNS, "protocol", route.DefaultProtocol)
	d.setKernelRoutes(b.KernelRoutes)
	return routes.New(routes.Config{Backend: b, Store: d.st, Logger: log, Ready: dp.waitReady})
}

// RouteApplyStats counts how the route reconciler applied the tree's
// changes: patched in, or whole Sets and why (routes.ApplyStats), for
// tests and benchmarks that show a pod costs a Patch. It reports false
// when the routes component does not run or the daemon has shut down.
func (d *Daemon) RouteApplyStats() (routes.ApplyStats, bool) {
	if d.dp == nil || d.dp.routes == nil {
		return routes.ApplyStats{}, false
	}
	return d.dp.routes.ApplyStats(), true
}

// mesh loads (or creates) the node's key, opens the WireGuard backend and
// builds the mesh component over it, with its posture step. Where the
// mesh cannot run (the dataplane off, the probe's verdict, the key or the
// backend failing to open) it builds the component that publishes the
// node's mesh state and why instead (no step): without its key the node
// cannot join any mesh, and the rest of the dataplane still runs.
func (d *Daemon) mesh(dp *dataplane, probed probe.Report) (component, posture.Step) {
	log := d.log.With("component", "mesh")
	unavailable := func(pub wgmesh.Key, why string) component {
		if l := d.claims.device; l != nil {
			// No device will be hosted: its name is free for others.
			l.Close()
			d.claims.device = nil
		}
		return mesh.NewUnavailable(mesh.UnavailableConfig{Store: d.st, Logger: log, Public: pub, Reason: why})
	}
	priv, pub, err := wgmesh.LoadOrCreateKey(d.cfg.DataDir)
	if err != nil {
		d.log.Warn("mesh unavailable", "err", err)
		return unavailable(wgmesh.Key{}, err.Error()), nil
	}
	switch {
	case d.cfg.Dataplane != "auto":
		d.log.Info("mesh unavailable: the dataplane is off", "public_key", pub.String())
		return unavailable(pub, "the dataplane is off (--dataplane off)"), nil
	case !probed.WGMesh.Available:
		d.log.Info("mesh unavailable", "why", probed.WGMesh.Reason, "public_key", pub.String())
		return unavailable(pub, probed.WGMesh.Reason), nil
	}
	b, err := wgdevice.New(wgdevice.Options{Netns: mesh.NetnsPath(d.cfg.NetNS), Logger: log})
	if err != nil {
		d.log.Warn("mesh backend unavailable", "netns", d.cfg.NetNS, "err", err)
		return unavailable(pub, "open the mesh backend: "+err.Error()), nil
	}
	device := d.cfg.MeshDevice
	if device == "" {
		device = mesh.DeviceEmbedded
	}
	d.log.Info("mesh backend", "netns", d.cfg.NetNS, "public_key", pub.String(), "device", device)
	me := d.self()
	c := mesh.Config{Backend: b, Store: d.st, Logger: log, Node: d.cfg.NodeName, NetNS: d.cfg.NetNS,
		Private: priv, Public: pub, Device: device, Ready: dp.waitReady,
		LockDevice: func(name string) (io.Closer, error) { return hostlock.WireGuardDevice(name, me) }}
	if l := d.claims.device; l != nil {
		c.Held = mesh.HeldDevice{Name: d.claims.deviceName, Lock: l}
		d.claims.device = nil // the component releases it now
	}
	comp := mesh.New(c)
	return comp, comp.Step()
}

// close stops the engine and the components (each closes its backend),
// then the backends no component owns.
func (dp *dataplane) close() error {
	if dp == nil {
		return nil
	}
	if dp.cancel != nil {
		dp.cancel()
	}
	dp.wg.Wait()
	var errs []error
	for i := len(dp.comps) - 1; i >= 0; i-- {
		if err := dp.comps[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(dp.closers) - 1; i >= 0; i-- {
		if err := dp.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// backendVerdicts collects /kedge/system/backends: whether each backend
// runs and why, for kedgectl status and the status page.
type backendVerdicts struct {
	on   bool // --dataplane auto
	list []system.Backend
}

func (b *backendVerdicts) add(r probe.Result, active bool) {
	b.list = append(b.list, system.Backend{Name: string(r.Backend), Active: active, Reason: r.Reason})
}

func (b *backendVerdicts) active(r probe.Result) { b.add(r, true) }

// failed records a backend the probe allowed but that did not open.
func (b *backendVerdicts) failed(r probe.Result, err error) {
	b.list = append(b.list, system.Backend{Name: string(r.Backend), Reason: "open failed: " + err.Error()})
}

// unclaimed records a backend the probe allowed whose host-wide resource
// the daemon could not lock for another reason than a holder (a holder
// stops the start).
func (b *backendVerdicts) unclaimed(r probe.Result) {
	b.list = append(b.list, system.Backend{Name: string(r.Backend), Reason: "its host lock could not be taken (see the log)"})
}

// off records a backend that does not run: turned off by its setting
// (setting names it), by --dataplane off, or refused by the probe.
func (b *backendVerdicts) off(r probe.Result, bySetting bool, setting string) {
	why := r.Reason
	switch {
	case !b.on:
		why = "--dataplane off"
	case bySetting:
		why = setting
	}
	b.list = append(b.list, system.Backend{Name: string(r.Backend), Reason: why})
}
