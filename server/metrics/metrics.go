// Package metrics owns the daemon's Prometheus metrics: their registry,
// and the hooks that feed them. It never reads a backend and no RPC
// handler calls it: gauges of the node (posture levels, routes by class
// and state, mesh peers by status, sessions) come from the node summary
// the change-feed follower publishes (Observe); transitions and their
// steps from the posture engine's report hook (PostureReport); gNMI RPCs,
// their latency, commits and subscribers from gRPC interceptors; Shellstream
// handshake latency and denials from the session transits the service
// already emits (Transit); change-feed lag from the watchers' positions
// at scrape time (WatchLag).
//
// Every metric is named kedge_*; README.md's metrics table lists them.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

// Buckets of the latency histograms, in seconds: posture steps run from
// microseconds (the VPP segment) to seconds (a mesh drain), commits and
// RPCs from about a millisecond (one fdatasync) up.
var (
	stepBuckets   = prometheus.ExponentialBuckets(10e-6, 4, 11)  // 10 µs .. 10.5 s
	rpcBuckets    = prometheus.ExponentialBuckets(100e-6, 2, 17) // 100 µs .. 6.5 s
	shakeBuckets  = prometheus.ExponentialBuckets(500e-6, 2, 14) // 0.5 ms .. 4 s
	feedLagBucket = prometheus.ExponentialBuckets(50e-6, 4, 10)  // 50 µs .. 13 s
)

// Metrics is the daemon's registry and its instruments. All methods are
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	level, effective  prometheus.Gauge
	transitions       *prometheus.CounterVec
	transitionSeconds *prometheus.HistogramVec
	stepSeconds       *prometheus.HistogramVec

	rpcs        *prometheus.CounterVec
	rpcSeconds  *prometheus.HistogramVec
	commit      prometheus.Histogram
	subscribers prometheus.Gauge

	routes   *prometheus.GaugeVec
	peers    *prometheus.GaugeVec
	sessions *prometheus.GaugeVec

	shakeHist prometheus.Histogram
	denials   *prometheus.CounterVec
	opensMu   sync.Mutex
	opens     map[string]time.Time // session id -> its open event's time

	feedDelay prometheus.Histogram
	notary    *prometheus.GaugeVec

	upstreamRecords prometheus.Gauge
	lastAck         atomic.Pointer[time.Time] // of the oldest unacknowledged wait; nil or zero: none

	devices   *prometheus.GaugeVec
	drifted   prometheus.Gauge
	mutations *prometheus.GaugeVec
}

// New returns the metrics with the Go runtime's and the process's
// collectors registered beside Kedge's own.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), opens: map[string]time.Time{}}
	f := factory{m.reg}
	m.level = f.gauge("kedge_posture_level", "The intended posture level the engine applies (5 normal .. 1 lockdown).")
	m.effective = f.gauge("kedge_posture_effective_level", "The posture level in force: the stricter of the intended level and an external request.")
	m.transitions = f.counterVec("kedge_posture_transitions_total", "Posture transitions run, by levels and result (ok, partial, failed).", "from", "to", "result")
	m.transitionSeconds = f.histVec("kedge_posture_transition_duration_seconds", "How long posture transitions took, by result.", stepBuckets, "result")
	m.stepSeconds = f.histVec("kedge_posture_step_duration_seconds", "How long each step of a posture transition took, by step and result.", stepBuckets, "step", "result")

	m.rpcs = f.counterVec("kedge_gnmi_rpcs_total", "gNMI RPCs finished, by method and gRPC code.", "method", "code")
	m.rpcSeconds = f.histVec("kedge_gnmi_rpc_duration_seconds", "Latency of unary gNMI RPCs (Capabilities, Get, Set), by method.", rpcBuckets, "method")
	m.commit = f.hist("kedge_commit_duration_seconds", "Latency of accepted gNMI Sets: request to durable, acknowledged commit (validation, authorization, the log's fdatasync).", rpcBuckets)
	m.subscribers = f.gauge("kedge_gnmi_subscribers", "Open gNMI Subscribe streams.")

	m.routes = f.gaugeVec("kedge_routes", "Routes in /kedge/routes by class and status (unreported: no state written yet).", "class", "status")
	m.peers = f.gaugeVec("kedge_mesh_peers", "Mesh peers by status (unreported: no state written yet).", "status")
	m.sessions = f.gaugeVec("kedge_shellstream_sessions", "Shellstream sessions in /kedge/sessions by status.", "status")

	m.shakeHist = f.hist("kedge_shellstream_handshake_duration_seconds", "Shellstream handshakes from ATTEST-INIT accepted to GRANT sent.", shakeBuckets)
	m.denials = f.counterVec("kedge_shellstream_denials_total", "Shellstream handshakes denied, by reason (posture, invalid_sat, invalid_proof, unauthorized, replay, timeout, bad_request, unavailable).", "reason")

	m.feedDelay = f.hist("kedge_change_feed_delay_seconds", "Time from a commit to the status follower reading it from the change feed.", feedLagBucket)
	m.notary = f.gaugeVec("kedge_notary", "The notary's state: records, log_bytes, sampling_percent, dropped_transits (transits its full queue refused).", "what")
	m.upstreamRecords = f.gauge("kedge_notary_upstream_lag_records", "Notary records Quartermaster has not acknowledged yet (0 without an upstream).")
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kedge_notary_upstream_lag_seconds",
		Help: "Time since Quartermaster last acknowledged the notary's log while records wait (0 when caught up or without an upstream)."},
		func() float64 {
			at := m.lastAck.Load()
			if at == nil || at.IsZero() {
				return 0
			}
			return time.Since(*at).Seconds()
		}))

	m.devices = f.gaugeVec("kedge_underlay_devices", "Underlay devices by status (unreported: no state written yet).", "status")
	m.drifted = f.gauge("kedge_underlay_drifted_devices", "Underlay devices whose running configuration drifted from what Kedge applied.")
	m.mutations = f.gaugeVec("kedge_underlay_mutations", "Underlay mutations (proposals) by status.", "status")

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every label value the metrics can take is there from the start, so
	// a scrape shows zeros rather than missing series.
	for _, c := range kedgepath.RouteClassValues() {
		for _, s := range summary.RouteStatuses {
			m.routes.WithLabelValues(string(c), s)
		}
	}
	for _, s := range peerStatuses() {
		m.peers.WithLabelValues(s)
	}
	for _, s := range kedgepath.SessionStatusValues() {
		m.sessions.WithLabelValues(string(s))
	}
	for _, s := range deviceStatuses() {
		m.devices.WithLabelValues(s)
	}
	for _, s := range mutationStatuses() {
		m.mutations.WithLabelValues(s)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, for components that add collectors of their
// own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func peerStatuses() []string {
	var out []string
	for _, s := range kedgepath.PeerStatusValues() {
		out = append(out, string(s))
	}
	return append(out, summary.StatusUnreported)
}

func deviceStatuses() []string {
	var out []string
	for _, s := range kedgepath.DeviceStatusValues() {
		out = append(out, string(s))
	}
	return append(out, summary.StatusUnreported)
}

func mutationStatuses() []string {
	var out []string
	for _, s := range kedgepath.MutationStatusValues() {
		out = append(out, string(s))
	}
	return append(out, summary.StatusUnreported)
}

// Observe sets the node's gauges from a summary (the change-feed
// follower calls it with each one it publishes).
func (m *Metrics) Observe(n *summary.Node) {
	m.level.Set(float64(n.Posture.Level))
	m.effective.Set(float64(n.Posture.Effective))
	for _, c := range n.Routes.ByClass {
		for s, v := range c.Status {
			m.routes.WithLabelValues(c.Class, s).Set(float64(v))
		}
	}
	peers := map[string]int{}
	for _, p := range n.Mesh.Peers {
		peers[p.Status]++
	}
	for _, s := range peerStatuses() {
		m.peers.WithLabelValues(s).Set(float64(peers[s]))
	}
	sessions := map[string]int{}
	for _, s := range n.Sessions {
		sessions[s.Status]++
	}
	for _, s := range kedgepath.SessionStatusValues() {
		m.sessions.WithLabelValues(string(s)).Set(float64(sessions[string(s)]))
	}
	devices, drifted := map[string]int{}, 0
	for _, d := range n.Underlay.Devices {
		devices[d.Status]++
		if d.Drift {
			drifted++
		}
	}
	for _, s := range deviceStatuses() {
		m.devices.WithLabelValues(s).Set(float64(devices[s]))
	}
	m.drifted.Set(float64(drifted))
	muts := map[string]int{}
	for _, x := range n.Underlay.Mutations {
		muts[x.Status]++
	}
	for _, s := range mutationStatuses() {
		m.mutations.WithLabelValues(s).Set(float64(muts[s]))
	}
	m.notary.WithLabelValues("records").Set(float64(n.Notary.Records))
	m.notary.WithLabelValues("log_bytes").Set(float64(n.Notary.LogSize))
	m.notary.WithLabelValues("sampling_percent").Set(float64(n.Notary.SamplingPercent))
	m.notary.WithLabelValues("dropped_transits").Set(float64(n.Notary.DroppedTransits))
	nt := n.Notary
	var waiting uint64
	if nt.UpstreamState != "" && nt.UpstreamState != "disabled" && nt.Records > nt.LastAckSize {
		waiting = nt.Records - nt.LastAckSize
	}
	m.upstreamRecords.Set(float64(waiting))
	since := time.Time{}
	if waiting > 0 {
		// Records wait: the lag runs from the last acknowledgement, or
		// from the daemon's start when nothing was acknowledged yet.
		since = nt.LastAckTime
		if since.IsZero() {
			since = n.System.BootTime
		}
	}
	m.lastAck.Store(&since)
}

// FeedDelay records how long after its commit a change-feed reader got a
// commit.
func (m *Metrics) FeedDelay(d time.Duration) { m.feedDelay.Observe(max(d, 0).Seconds()) }

// PostureReport records a finished transition and its steps (the posture
// engine's OnReport hook; in-progress reports are not passed to it).
func (m *Metrics) PostureReport(r posture.Report) {
	if r.Result == posture.ResultInProgress {
		return
	}
	m.transitions.WithLabelValues(strconv.Itoa(int(r.From)), strconv.Itoa(int(r.To)), r.Result).Inc()
	m.transitionSeconds.WithLabelValues(r.Result).Observe(r.Duration.Seconds())
	for _, s := range r.Steps {
		m.stepSeconds.WithLabelValues(s.Name, s.Result).Observe(s.Duration.Seconds())
	}
}

// maxOpenHandshakes bounds the handshakes timed at once: a flood of
// ATTEST-INITs that never finish cannot grow the map without limit (the
// service's own handshake timeout ends them; past the bound, new ones are
// simply not timed).
const maxOpenHandshakes = 1 << 14

// Transit implements shellstream.Recorder: an open event starts a
// handshake's clock, its grant stops it, a deny counts a denial by
// reason. It never blocks.
func (m *Metrics) Transit(e shellstream.Event) {
	m.opensMu.Lock()
	defer m.opensMu.Unlock()
	switch e.Kind {
	case shellstream.EventOpen:
		if len(m.opens) < maxOpenHandshakes {
			m.opens[e.SessionID] = e.Time
		}
	case shellstream.EventGrant:
		if t, ok := m.opens[e.SessionID]; ok {
			delete(m.opens, e.SessionID)
			m.shakeHist.Observe(max(e.Time.Sub(t), 0).Seconds())
		}
	case shellstream.EventDeny:
		delete(m.opens, e.SessionID)
		m.denials.WithLabelValues(DenyReason(e.Reason)).Inc()
	case shellstream.EventClose:
		// A session closed before its grant (the stream broke) is not
		// a handshake that finished.
		delete(m.opens, e.SessionID)
	}
}

// DenyReason is the label of a deny event's reason: the Shellstream
// DenyReason name before the first colon, lower case ("POSTURE: level 1
// admits ..." is posture).
func DenyReason(reason string) string {
	r, _, _ := strings.Cut(reason, ":")
	r = strings.ToLower(strings.TrimSpace(r))
	if r == "" || strings.ContainsAny(r, " \t") {
		return "other"
	}
	return r
}

// WatchLag exports how far a change-feed reader is behind the store, in
// commits, computed at scrape time: seq is the store's last commit,
// processed the last one the reader acted on.
func (m *Metrics) WatchLag(reader string, seq, processed func() uint64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "kedge_change_feed_lag_commits",
		Help:        "Commits a change-feed reader has not acted on yet, by reader.",
		ConstLabels: prometheus.Labels{"reader": reader},
	}, func() float64 {
		s, p := seq(), processed()
		if p >= s {
			return 0
		}
		return float64(s - p)
	}))
}

// factory registers what it makes.
type factory struct{ reg *prometheus.Registry }

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) hist(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: slices.Clone(buckets)})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: slices.Clone(buckets)}, labels)
	f.reg.MustRegister(h)
	return h
}
