package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/listen"
	"github.com/guildhouse-co/kedge/server/metrics"
	"github.com/guildhouse-co/kedge/server/observe"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/shellstream"
	"github.com/guildhouse-co/kedge/server/statuspage"
)

// observer is the daemon's observation side: the metrics, the follower
// that keeps the node summary current from the change feed, and the HTTP
// listener of /metrics, /healthz, /readyz and the status page. It is
// started right after the store opens, so liveness answers while the
// rest starts, and readiness says what it waits for.
type observer struct {
	m      *metrics.Metrics
	f      *observe.Follower
	srv    *observe.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error

	// Set by the rest of the start-up, read by /readyz.
	engine  atomic.Pointer[posture.Engine]
	ready   atomic.Pointer[chan struct{}] // the dataplane's engine-ready channel
	serving atomic.Bool                   // every gNMI listener is accepting
}

// startObserver creates the metrics and the follower and, unless
// --metrics-listen is off, the listener.
func (d *Daemon) startObserver(ctx context.Context) error {
	o := &observer{m: metrics.New()}
	o.f = observe.NewFollower(d.st, observe.FollowerOptions{
		Logger: d.log.With("component", "status"), OnSummary: o.m.Observe, OnDelay: o.m.FeedDelay})
	o.m.WatchLag("status", d.st.Seq, o.f.Processed)
	o.m.WatchLag("posture", d.st.Seq, func() uint64 {
		if e := o.engine.Load(); e != nil {
			return e.Processed()
		}
		return 0
	})
	ctx, o.cancel = context.WithCancel(ctx)
	o.wg.Go(func() {
		if err := o.f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("status follower stopped", "err", err)
		}
	})
	d.obs = o
	if d.cfg.MetricsOff() {
		d.log.Info("metrics listener off (--metrics-listen off)")
		return nil
	}
	srv, err := observe.Listen(observe.Options{Addr: d.cfg.MetricsListen, Logger: d.log.With("component", "observe"),
		Metrics: o.m.Handler(), Page: statuspage.Handler(o.f), Ready: o.notReady})
	if err != nil {
		return fmt.Errorf("start metrics listener: %w", err)
	}
	o.srv = srv
	loop := "loopback only"
	if !listen.IsLoopback(d.cfg.MetricsListen) {
		loop = "NOT loopback: whoever reaches it reads the metrics and the status page"
	}
	d.log.Info("metrics, health and status page listening", "addr", "http://"+srv.Addr().String(), "access", loop)
	return nil
}

// notReady lists what keeps the daemon from being ready.
func (o *observer) notReady() []string {
	var why []string
	if !o.f.Following() {
		why = append(why, "the tree store is not open")
	}
	if c := o.ready.Load(); c == nil || !closed(*c) {
		why = append(why, "the posture engine has not converged")
	}
	if !o.serving.Load() {
		why = append(why, "the gNMI listeners are not up")
	}
	return why
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// watchEngine hands the posture engine and its ready channel to readiness
// and the lag metric.
func (o *observer) watchEngine(e *posture.Engine, ready *chan struct{}) {
	if o == nil {
		return
	}
	o.engine.Store(e)
	o.ready.Store(ready)
}

// postureReports is the posture engine's report hook: the notary records
// the transition, the metrics time it and its steps.
func (d *Daemon) postureReports(r posture.Report) {
	d.onPostureReport(r)
	if d.obs != nil {
		d.obs.m.PostureReport(r)
	}
}

// transitRecorders is where Shellstream's transits go: the notary, and
// the metrics' handshake latency and denials.
func (d *Daemon) transitRecorders() shellstream.Recorder {
	var rs recorders
	if r := d.transitRecorder(); r != nil {
		rs = append(rs, r)
	}
	if d.obs != nil {
		rs = append(rs, d.obs.m)
	}
	switch len(rs) {
	case 0:
		return nil
	case 1:
		return rs[0]
	}
	return rs
}

// recorders hands each transit to every recorder in turn (each returns
// quickly: the notary queues, the metrics count).
type recorders []shellstream.Recorder

func (rs recorders) Transit(e shellstream.Event) {
	for _, r := range rs {
		r.Transit(e)
	}
}

// interceptors are the metrics' gRPC interceptors, first in each chain so
// that refused RPCs count too.
func (o *observer) interceptors() ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	if o == nil {
		return nil, nil
	}
	return []grpc.UnaryServerInterceptor{o.m.UnaryInterceptor}, []grpc.StreamServerInterceptor{o.m.StreamInterceptor}
}

// Summary returns the node summary the status page shows (nil before the
// follower read the tree).
func (d *Daemon) Summary() *summary.Node {
	if d.obs == nil {
		return nil
	}
	n, _ := d.obs.f.Current()
	return n
}

// MetricsAddr is the observation listener's address ("" without one).
func (d *Daemon) MetricsAddr() string {
	if d.obs == nil || d.obs.srv == nil {
		return ""
	}
	return d.obs.srv.Addr().String()
}

// close stops the listener (its event streams end at once) and the
// follower. Safe on nil and more than once.
func (o *observer) close() error {
	if o == nil {
		return nil
	}
	o.once.Do(func() {
		if o.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			o.err = o.srv.Close(ctx)
			cancel()
		}
		o.cancel()
		o.wg.Wait()
	})
	return o.err
}
