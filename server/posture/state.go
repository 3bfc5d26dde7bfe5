package posture

import (
	"strconv"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/accord"
)

// HistoryLen is how many past transitions /kedge/posture/history keeps.
const HistoryLen = 64

// Sources of the effective level (leaf /kedge/posture/state/source).
const (
	SourceConfig  = "config"
	SourceBPFMap  = "bpf-map"
	SourceCluster = "cluster"
)

// Transition results (typedef transition-result) and step results.
const (
	ResultOK         = "ok"
	ResultPartial    = "partial"
	ResultFailed     = "failed"
	ResultInProgress = "in-progress"
	ResultSkipped    = "skipped"
)

// StepResult is the timing and outcome of one step.
type StepResult struct {
	Index    int
	Name     string
	Started  time.Time
	Duration time.Duration
	Result   string // ok, failed or skipped
	Err      string
}

// Report is the outcome of one transition.
type Report struct {
	Seq      uint64
	From, To uint8
	Started  time.Time
	Duration time.Duration
	Result   string
	Resume   bool // a re-run of an interrupted or failed plan
	Steps    []StepResult
}

// ops builds store operations under one path prefix.
type ops struct {
	prefix []*gpb.PathElem
	list   []store.Op
}

func elem(name string, keys ...string) *gpb.PathElem {
	e := &gpb.PathElem{Name: name}
	if len(keys) > 0 {
		e.Key = map[string]string{}
		for i := 0; i+1 < len(keys); i += 2 {
			e.Key[keys[i]] = keys[i+1]
		}
	}
	return e
}

func (o *ops) at(rel ...*gpb.PathElem) []*gpb.PathElem {
	p := make([]*gpb.PathElem, 0, len(o.prefix)+len(rel))
	return append(append(p, o.prefix...), rel...)
}

func (o *ops) uint(leaf string, v uint64) {
	o.list = append(o.list, store.Op{Kind: store.OpUpdate, Path: o.at(elem(leaf)),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}}})
}

func (o *ops) str(leaf, v string) {
	o.list = append(o.list, store.Op{Kind: store.OpUpdate, Path: o.at(elem(leaf)),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}})
}

func (o *ops) boolean(leaf string, v bool) {
	o.list = append(o.list, store.Op{Kind: store.OpUpdate, Path: o.at(elem(leaf)),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: v}}})
}

// strs writes a leaf-list; an empty list deletes it (an empty leaf-list is
// indistinguishable from an absent one in the tree).
func (o *ops) strs(leaf string, vs []string) {
	if len(vs) == 0 {
		o.del(elem(leaf))
		return
	}
	el := make([]*gpb.TypedValue, len(vs))
	for i, v := range vs {
		el[i] = &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}
	}
	o.list = append(o.list, store.Op{Kind: store.OpUpdate, Path: o.at(elem(leaf)),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: el}}}})
}

func (o *ops) del(rel ...*gpb.PathElem) {
	o.list = append(o.list, store.Op{Kind: store.OpDelete, Path: o.at(rel...)})
}

func ns(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// accordOps writes the effective accords of every level to
// /kedge/accords/accord[level]/state (CommitOperational: the entries may
// exist only in state).
func accordOps(all []accord.Accord) []store.Op {
	var out []store.Op
	for _, a := range all {
		o := &ops{prefix: []*gpb.PathElem{elem("kedge"), elem("accords"),
			elem("accord", "level", strconv.Itoa(int(a.Level))), elem("state")}}
		o.uint("level", uint64(a.Level))
		o.str("overlay-mode", a.OverlayMode)
		o.uint("keepalive-seconds", uint64(a.KeepaliveSeconds))
		o.uint("health-check-seconds", uint64(a.HealthCheckSeconds))
		o.str("handshake", a.Handshake)
		o.strs("allowed-session-types", a.AllowedSessionTypes)
		o.strs("underlay-mutation-tiers", a.UnderlayMutationTiers)
		o.boolean("compiler-frozen", a.CompilerFrozen)
		o.str("route-policy", a.RoutePolicy)
		o.uint("notary-sampling-percent", uint64(a.NotarySamplingPercent))
		o.str("notary-flush", a.NotaryFlush)
		o.boolean("notary-payload-hashing", a.NotaryPayloadHashing)
		o.boolean("forensic-snapshot", a.ForensicSnapshot)
		o.str("vpp-flow-policy", a.VPPFlowPolicy)
		out = append(out, o.list...)
	}
	return out
}

// levelOps writes the level leaves of /kedge/posture/state.
func levelOps(cfg, eff uint8, source string, seq uint64) []store.Op {
	o := &ops{prefix: []*gpb.PathElem{elem("kedge"), elem("posture"), elem("state")}}
	o.uint("level", uint64(cfg))
	o.uint("effective-level", uint64(eff))
	o.str("source", source)
	o.uint("sequence", seq)
	return o.list
}

// reportOps writes a transition's report to last-transition, and, once it
// finished, to the history, dropping the entry that falls out of it.
func reportOps(r *Report, prevSteps int) []store.Op {
	o := &ops{prefix: []*gpb.PathElem{elem("kedge"), elem("posture"), elem("state"), elem("last-transition")}}
	o.uint("from-level", uint64(r.From))
	o.uint("to-level", uint64(r.To))
	o.uint("started", ns(r.Started))
	o.uint("duration-ns", uint64(r.Duration))
	o.str("result", r.Result)
	for i := len(r.Steps); i < prevSteps; i++ {
		o.del(elem("steps"), elem("step", "index", strconv.Itoa(i)))
	}
	for _, s := range r.Steps {
		so := &ops{prefix: o.at(elem("steps"), elem("step", "index", strconv.Itoa(s.Index)), elem("state"))}
		so.uint("index", uint64(s.Index))
		so.str("name", s.Name)
		so.uint("started", ns(s.Started))
		so.uint("duration-ns", uint64(s.Duration))
		so.str("result", s.Result)
		so.str("error", s.Err)
		o.list = append(o.list, so.list...)
	}
	if r.Result == ResultInProgress {
		return o.list
	}
	seq := strconv.FormatUint(r.Seq, 10)
	h := &ops{prefix: []*gpb.PathElem{elem("kedge"), elem("posture"), elem("history"), elem("transition", "sequence", seq), elem("state")}}
	h.uint("sequence", r.Seq)
	h.uint("from-level", uint64(r.From))
	h.uint("to-level", uint64(r.To))
	h.uint("started", ns(r.Started))
	h.uint("duration-ns", uint64(r.Duration))
	h.str("result", r.Result)
	if r.Seq > HistoryLen {
		old := strconv.FormatUint(r.Seq-HistoryLen, 10)
		h.list = append(h.list, store.Op{Kind: store.OpDelete, Path: []*gpb.PathElem{
			elem("kedge"), elem("posture"), elem("history"), elem("transition", "sequence", old)}})
	}
	return append(o.list, h.list...)
}
