package underlay

import (
	"context"
	"log/slog"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
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
	target   *oc.Device // what Kedge last applied (nil: nothing yet)
	interval time.Duration
	watch    string
	subErr   chan error    // the subscription ended
	trigger  chan struct{} // the subscription saw a change
	subStop  context.CancelFunc
	backoff  time.Duration
	credErr  error // a configuration error: wait for a new config
}

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
			m.check(ctx)
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
			errc <- cl.subscribe(sctx, func(*gpb.Notification) {
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

// check reads the configuration and reports drift from the target; false
// when the device could not be read.
func (m *devman) check(ctx context.Context) bool {
	if m.cl == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, m.c.opt.RPCTimeout)
	defer cancel()
	running, err := m.cl.get(rctx)
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
	ev := evCheck{reachable: true, watch: m.watch, at: m.c.opt.Now()}
	if m.target != nil {
		ops, err := mu.Diff(running, m.target, m.target)
		if err != nil {
			m.report(evCheck{err: err, watch: m.watch})
			return true
		}
		for _, op := range ops {
			ev.drift = append(ev.drift, op.PathString())
		}
	}
	ev.noDrift = len(ev.drift) == 0
	m.report(ev)
	return true
}

// report sends an event to the component, stamped with this manager.
func (m *devman) report(ev evCheck) {
	ev.device, ev.gen = m.name, m.gen
	if ev.at.IsZero() {
		ev.at = m.c.opt.Now()
	}
	m.c.in.Put(ev)
}
