package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/probe"
)

// dataplane is the part of the daemon that acts on the machine: the
// posture engine with the steps of the backends this machine allows, and
// the reconcilers that keep backends matching the tree. It only reads the
// store's change feed and writes state back; RPC handlers never reach it.
type dataplane struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func() error
	engine  *posture.Engine
	// ready closes once the engine has converged after start and
	// published the effective level. Reconcilers wait for it: the
	// effective level is state, not persisted, and a reconciler that ran
	// first would apply the configured level for a moment even when the
	// BPF map (which survives restarts) holds a stricter one.
	ready     chan struct{}
	readyOnce sync.Once
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

// startDataplane opens the backends the probe allows and starts the
// posture engine. A backend that cannot open is logged and left out: the
// node keeps serving its tree, and its state says what is missing.
func (d *Daemon) startDataplane(results []probe.Result) error {
	avail := map[string]bool{}
	for _, r := range results {
		avail[r.Backend] = r.Available
	}
	cfg := d.cfg
	dp := &dataplane{ready: make(chan struct{})}
	var steps []posture.Step
	var levels posture.LevelSource
	on := cfg.Dataplane == "auto"

	if on && cfg.ShmPath != "off" && avail["shm"] {
		w, err := shm.Open(cfg.ShmPath, shm.WithLogger(d.log))
		if err != nil {
			d.log.Warn("VPP governance segment unavailable", "path", cfg.ShmPath, "err", err)
		} else {
			steps = append(steps, posture.ShmStep(w))
			dp.closers = append(dp.closers, w.Close)
			d.log.Info("VPP governance segment", "path", w.Path())
		}
	}
	if on && cfg.BPFPinDir != "off" && avail["bpfmap"] {
		b, err := bpfmap.Open(bpfmap.WithPinDir(cfg.BPFPinDir), bpfmap.WithLogger(d.log))
		if err != nil {
			d.log.Warn("posture_level BPF map unavailable", "pin_dir", cfg.BPFPinDir, "err", err)
		} else {
			steps = append(steps, posture.BPFMapStep(d.level1Allowlist(b), bpfmap.Config{CgroupPath: cfg.EnforceCgroup}))
			levels = b
			dp.closers = append(dp.closers, b.Close)
			d.log.Info("posture_level BPF map", "pin_dir", cfg.BPFPinDir, "enforce_cgroup", cfg.EnforceCgroup)
		}
	}
	extra, err := d.startReconcilers(dp, on, avail)
	if err != nil {
		dp.close()
		return err
	}
	steps = append(steps, extra...)
	steps = append(steps, d.notarySteps()...)

	eng, err := posture.New(d.st, posture.Options{Logger: d.log.With("component", "posture"), Steps: steps, LevelSource: levels,
		OnReady:  func() { dp.readyOnce.Do(func() { close(dp.ready) }) },
		OnReport: d.onPostureReport})
	if err != nil {
		dp.close()
		return fmt.Errorf("start posture engine: %w", err)
	}
	dp.engine = eng
	ctx, cancel := context.WithCancel(context.Background())
	dp.cancel = cancel
	dp.wg.Add(1)
	go func() {
		defer dp.wg.Done()
		if err := eng.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("posture engine stopped", "err", err)
		}
	}()
	dp.wg.Add(1)
	go func() {
		defer dp.wg.Done()
		d.sweepPods(ctx)
	}()
	d.startSystem(ctx, dp)
	names := make([]string, 0, len(steps))
	for _, s := range steps {
		names = append(names, s.Name())
	}
	d.log.Info("posture engine running", "steps", names)
	d.dp = dp
	return nil
}

// close stops the engine and the reconcilers, then closes the backends.
func (dp *dataplane) close() error {
	if dp == nil {
		return nil
	}
	if dp.cancel != nil {
		dp.cancel()
	}
	dp.wg.Wait()
	var errs []error
	for i := len(dp.closers) - 1; i >= 0; i-- {
		if err := dp.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
