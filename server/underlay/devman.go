package underlay

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/oc"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// Watch modes (leaf device/state/watch).
const (
	watchOnChange = "on-change"
	watchPoll     = "poll"
)

// devman manages one device: its client, watching its configuration
// (a Subscribe ON_CHANGE stream, or Get at the drift interval), checking
// it against the target and running pushes one at a time. It runs on its
// own goroutine; the component talks to it through its mailbox (closures
// run on that goroutine) and hears back through the component's.
//
// An ON_CHANGE notification is a trigger, not the truth: after one the
// manager reads the configuration with Get and compares that. A mirror
// built from notifications lags behind Kedge's own pushes and would show
// drift that is not there, and a repair of that would be a push for
// nothing.
type devman struct {
	name string
	gen  uint64 // the component's generation of this manager
	cfg  mu.Device
	c    *Component
	log  *slog.Logger
	in   *mailbox[func(*devman)]

	ctx context.Context // run's context

	// Owned by run's goroutine.
	cl       *client
	target   *oc.Device  // what Kedge last applied (nil: nothing yet)
	snap     mu.Snapshot // target's snapshot, for drift checks
	interval time.Duration
	watch    string
	subErr   chan error    // the subscription ended
	trigger  chan struct{} // the subscription saw a change
	subStop  context.CancelFunc
	backoff  time.Duration
	credErr  error // a configuration error: wait for a new config
	// drift is the device's drift by container path, as last compared.
	drift map[string]bool

	// changed collects what ON_CHANGE notifications touched, for a check
	// of just those containers; written by the stream's goroutine.
	mu      sync.Mutex
	changed map[string]*gpb.Path
	full    bool // a change no single container covers: read everything
}

// maxContainerGets is how many changed containers a check reads one by
// one; past it one Get of everything is cheaper.
const maxContainerGets = 16

func newDevman(c *Component, cfg mu.Device, gen uint64, target *oc.Device, interval time.Duration) *devman {
	return &devman{name: cfg.Name, gen: gen, cfg: cfg, c: c, log: c.log.With("device", cfg.Name),
		in: newMailbox[func(*devman)](), target: target, interval: interval,
		subErr: make(chan error, 1), trigger: make(chan struct{}, 1)}
}

// run serves the device until ctx ends.
func (m *devman) run(ctx context.Context) {
	defer m.disconnect()
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	var retry <-chan time.Time
	for {
		if m.cl == nil && m.credErr == nil && retry == nil {
			if !m.connect(ctx) {
				retry = time.After(m.nextBackoff())
			}
		}
		// Poll at the interval unless a subscription watches.
		wantTick := m.cl != nil && m.watch == watchPoll && m.interval > 0
		if wantTick && ticker == nil {
			ticker = time.NewTicker(m.interval)
			tick = ticker.C
		} else if !wantTick && ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
		select {
		case <-ctx.Done():
			return
		case <-m.in.Ready():
			oldInterval := m.interval
			for _, fn := range m.in.Take() {
				fn(m)
			}
			if ticker != nil && m.interval != oldInterval && m.interval > 0 {
				ticker.Reset(m.interval)
			}
		case <-tick:
			m.check(ctx)
		case <-m.trigger:
			m.checkChanged(ctx)
		case err := <-m.subErr:
			if status.Code(err) == codes.Unimplemented {
				m.log.Info("device has no ON_CHANGE subscriptions; polling", "err", err)
				m.watch = watchPoll
				m.report(evCheck{reachable: true, watch: m.watch, noDrift: true})
				m.check(ctx)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("device stream ended", "err", err)
			m.disconnect()
			m.report(evCheck{err: err, watch: m.watch})
			retry = time.After(m.nextBackoff())
		case <-retry:
			retry = nil
		}
	}
}

func (m *devman) nextBackoff() time.Duration {
	o := m.c.opt
	m.backoff = max(o.RetryMin, min(2*m.backoff, o.RetryMax))
	return m.backoff
}

// connect makes the client and starts watching; false means try again later.
func (m *devman) connect(ctx context.Context) bool {
	cl, err := dial(m.cfg, m.c.opt.CredentialsDir)
	if err != nil {
		m.credErr = err
		m.log.Warn("device not usable", "err", err)
		m.report(evCheck{err: err})
		return true
	}
	m.cl = cl
	m.watch = watchPoll
	if m.cfg.OnChange {
		m.watch = watchOnChange
		sctx, cancel := context.WithCancel(ctx)
		m.subStop = cancel
		errc, trig := m.subErr, m.trigger
		go func() {
			errc <- cl.subscribe(sctx, func(n *gpb.Notification) {
				m.noteChange(n)
				select {
				case trig <- struct{}{}:
				default:
				}
			})
		}()
		// The stream's initial sync triggers the first check.
		return true
	}
	return m.check(ctx)
}

func (m *devman) disconnect() {
	if m.subStop != nil {
		m.subStop()
		m.subStop = nil
	}
	if m.cl != nil {
		m.cl.close()
		m.cl = nil
	}
	// A stale trigger or stream error belongs to the old client.
	select {
	case <-m.trigger:
	default:
	}
}

// noteChange records the owned containers a notification touched (nil:
// the initial sync ended, read everything).
func (m *devman) noteChange(n *gpb.Notification) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == nil {
		m.full = true
		return
	}
	if m.changed == nil {
		m.changed = map[string]*gpb.Path{}
	}
	note := func(p *gpb.Path) {
		full := &gpb.Path{Elem: append(append([]*gpb.PathElem{}, n.GetPrefix().GetElem()...), p.GetElem()...)}
		c, all := mu.Owned(full)
		switch {
		case all:
			m.full = true
		case c != nil:
			s, _ := ygot.PathToString(c)
			m.changed[s] = c
		}
	}
	for _, u := range n.GetUpdate() {
		note(u.GetPath())
	}
	for _, d := range n.GetDelete() {
		note(d)
	}
}

// checkChanged compares what the notifications since the last check
// touched: just those containers, or everything when that is cheaper or
// needed.
func (m *devman) checkChanged(ctx context.Context) {
	m.mu.Lock()
	full, changed := m.full, m.changed
	m.full, m.changed = false, nil
	m.mu.Unlock()
	if full || len(changed) > maxContainerGets || m.target == nil || m.drift == nil {
		m.check(ctx)
		return
	}
	if len(changed) == 0 || m.cl == nil {
		return
	}
	paths := make([]*gpb.Path, 0, len(changed))
	for _, p := range changed {
		paths = append(paths, p)
	}
	rctx, cancel := context.WithTimeout(ctx, m.c.opt.RPCTimeout)
	defer cancel()
	running, err := m.cl.containerSnapshot(rctx, paths)
	if err != nil {
		if ctx.Err() == nil {
			m.report(evCheck{err: err, watch: m.watch})
		}
		return
	}
	if err := m.targetSnapshot(); err != nil {
		m.report(evCheck{err: err, watch: m.watch})
		return
	}
	for s := range changed {
		delete(m.drift, s)
	}
	for _, p := range mu.Drift(running, m.snap, slices.Collect(maps.Keys(changed))...) {
		m.drift[p] = true
	}
	m.reportDrift()
}

// reportDrift reports the drift set, sorted.
func (m *devman) reportDrift() {
	ev := evCheck{reachable: true, watch: m.watch, at: m.c.opt.Now(), noDrift: len(m.drift) == 0}
	ev.drift = slices.Sorted(maps.Keys(m.drift))
	m.report(ev)
}

// check reads the configuration and reports drift from the target; false
// when the device could not be read.
func (m *devman) check(ctx context.Context) bool {
	if m.cl == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, m.c.opt.RPCTimeout)
	defer cancel()
	running, err := m.cl.snapshot(rctx)
	if err != nil {
		if ctx.Err() == nil {
			m.report(evCheck{err: err, watch: m.watch})
			if m.watch == watchPoll {
				// No stream tells us when it is back: drop the client and
				// reconnect with backoff.
				m.disconnect()
			}
		}
		return false
	}
	m.backoff = 0
	if m.target == nil {
		m.drift = nil
		m.report(evCheck{reachable: true, watch: m.watch, at: m.c.opt.Now()})
		return true
	}
	if err := m.targetSnapshot(); err != nil {
		m.report(evCheck{err: err, watch: m.watch})
		return true
	}
	m.drift = map[string]bool{}
	for _, p := range mu.Drift(running, m.snap) {
		m.drift[p] = true
	}
	m.reportDrift()
	return true
}

// targetSnapshot makes the target's snapshot if the target changed.
func (m *devman) targetSnapshot() error {
	if m.snap != nil {
		return nil
	}
	s, err := mu.SnapshotOf(m.target)
	if err != nil {
		return err
	}
	m.snap = s
	return nil
}

// report sends an event to the component, stamped with this manager.
func (m *devman) report(ev evCheck) {
	ev.device, ev.gen = m.name, m.gen
	if ev.at.IsZero() {
		ev.at = m.c.opt.Now()
	}
	m.c.in.Put(ev)
}
