// Package summary is what an operator sees of a Kedge node, read from its
// tree with the generated typed readers: the identity, the posture level
// with the last transition's step timings and the recent history, the
// dataplane backends and why each runs or not, route counts by class and
// state, the mesh peers, the Shellstream sessions and the notary. The
// daemon's status page and metrics build it from the store; kedgectl
// builds it from a mirror of a remote node's tree (gnmi/mirror), so both
// show exactly the same thing. It is pure: no I/O, and it never keeps a
// reference into the tree it read.
//
// Each section has its own function so that a follower of the change feed
// recomputes only the sections a commit touched; Prefixes says which
// schema paths each one reads.
package summary

import (
	"cmp"
	"slices"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Node is the summary of one node. JSON names follow the tree's (kebab
// case), since kedgectl prints them with -o json and -o yaml.
type Node struct {
	// Seq is the store sequence number of the tree it was read from (0
	// when read from a mirror). A section the status follower holds back
	// (a costly recount, see server/observe) may reflect an earlier one.
	Seq      uint64    `json:"seq,omitempty"`
	System   System    `json:"system"`
	Posture  Posture   `json:"posture"`
	Backends []Backend `json:"backends"`
	Routes   Routes    `json:"routes"`
	Mesh     Mesh      `json:"mesh"`
	Sessions []Session `json:"sessions"`
	Notary   Notary    `json:"notary"`
	Underlay Underlay  `json:"underlay"`
}

// System is the node's identity and build.
type System struct {
	Node     string    `json:"node-name"`
	Cluster  string    `json:"cluster,omitempty"`
	Role     string    `json:"role,omitempty"`
	Version  string    `json:"version,omitempty"`
	BootTime time.Time `json:"boot-time,omitzero"`
}

// Posture is the node's level and its transitions.
type Posture struct {
	// Level is the intended level the engine applies, Effective the one
	// in force (the strictest of it, the BPF map's request and the
	// cluster's level), Source which of them won.
	Level     uint8  `json:"level"`
	Effective uint8  `json:"effective-level"`
	Source    string `json:"source,omitempty"`
	Sequence  uint64 `json:"sequence"`
	// Cluster is the cluster-wide level the node follows (nil when it
	// follows none: no cluster engine has written one).
	Cluster *ClusterPosture `json:"cluster,omitempty"`
	// Last is the last transition, with its steps (nil before the first).
	Last *Transition `json:"last-transition,omitempty"`
	// History holds the finished transitions the tree keeps, oldest
	// first, without steps.
	History []Transition `json:"history"`
}

// ClusterPosture is the cluster's level as the cluster engine
// (server/kube) mirrors it into /kedge/posture/cluster.
type ClusterPosture struct {
	// Level is 0 when the cluster sets none.
	Level  uint8  `json:"level,omitempty"`
	Object string `json:"object,omitempty"`
	// Connected says whether the daemon reaches the cluster's API now;
	// LastSync is when it last heard from it.
	Connected bool      `json:"connected"`
	LastSync  time.Time `json:"last-sync,omitzero"`
}

// Transition is one posture transition.
type Transition struct {
	Sequence uint64        `json:"sequence,omitempty"`
	From     uint8         `json:"from-level"`
	To       uint8         `json:"to-level"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration-ns"`
	Result   string        `json:"result"`
	Steps    []Step        `json:"steps,omitempty"`
}

// Step is one step of a transition.
type Step struct {
	Index    uint8         `json:"index"`
	Name     string        `json:"name"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration-ns"`
	Result   string        `json:"result"`
	Error    string        `json:"error,omitempty"`
}

// Backend is a dataplane backend of the running daemon.
type Backend struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Reason string `json:"reason"`
}

// Route statuses as the summary counts them: the tree's four, and
// StatusUnreported for a route whose state nobody wrote (no route
// backend runs, or it has not reconciled yet).
const StatusUnreported = "unreported"

// RouteStatuses are the statuses counted, in display order.
var RouteStatuses = []string{string(kedgepath.RouteStatusInstalled), string(kedgepath.RouteStatusPending),
	string(kedgepath.RouteStatusWithheld), string(kedgepath.RouteStatusFailed), StatusUnreported}

// Routes counts the routes of /kedge/routes.
type Routes struct {
	Total int `json:"total"`
	// ByClass has one entry per route class, in the YANG order, classes
	// without routes included.
	ByClass []ClassCount `json:"by-class"`
}

// ClassCount counts one class's routes by status.
type ClassCount struct {
	Class string `json:"class"`
	Total int    `json:"total"`
	// Status maps each of RouteStatuses to its count.
	Status map[string]int `json:"status"`
}

// Mesh is the overlay device and its peers.
type Mesh struct {
	Interface string `json:"interface,omitempty"`
	Status    string `json:"status,omitempty"`
	PublicKey string `json:"public-key,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Error     string `json:"error,omitempty"`
	Peers     []Peer `json:"peers"`
}

// Peer is one mesh peer: its config and what the mesh reports of it.
type Peer struct {
	Name       string   `json:"name"`
	Endpoint   string   `json:"endpoint,omitempty"`
	AllowedIPs []string `json:"allowed-ips,omitempty"`
	Cluster    string   `json:"cluster,omitempty"`
	Critical   bool     `json:"critical"`
	// Status is the peer's state status, StatusUnreported before the
	// mesh wrote one.
	Status        string    `json:"status"`
	LastHandshake time.Time `json:"last-handshake,omitzero"`
	RxBytes       uint64    `json:"rx-bytes"`
	TxBytes       uint64    `json:"tx-bytes"`
	Error         string    `json:"error,omitempty"`
}

// Session is one Shellstream session.
type Session struct {
	ID          string    `json:"id"`
	Peer        string    `json:"peer"`
	Node        string    `json:"node,omitempty"`
	Cluster     string    `json:"cluster,omitempty"`
	Local       bool      `json:"local"`
	Tier        string    `json:"tier,omitempty"`
	Type        string    `json:"type"`
	Critical    bool      `json:"critical"`
	Effective   uint8     `json:"effective-posture"`
	Status      string    `json:"status"`
	Started     time.Time `json:"started,omitzero"`
	Closed      time.Time `json:"closed,omitzero"`
	CloseReason string    `json:"close-reason,omitempty"`
	BytesIn     uint64    `json:"bytes-in"`
	BytesOut    uint64    `json:"bytes-out"`
}

// Notary is the notary's state as the tree reports it.
type Notary struct {
	SamplingPercent uint8     `json:"sampling-percent"`
	FlushMode       string    `json:"flush-mode,omitempty"`
	PayloadHashing  bool      `json:"payload-hashing"`
	Records         uint64    `json:"records"`
	LogSize         uint64    `json:"log-size"`
	RootHash        string    `json:"root-hash,omitempty"`
	LastFlush       time.Time `json:"last-flush,omitzero"`
	// LastCheckpointSize is the tree size of the last signed checkpoint.
	LastCheckpointSize uint64 `json:"last-checkpoint-size"`
	// Upstream shipping to Quartermaster: its state, and the tree size
	// and time of its last acknowledgement.
	UpstreamState   string    `json:"upstream-state,omitempty"`
	UpstreamError   string    `json:"upstream-error,omitempty"`
	LastAckSize     uint64    `json:"last-ack-size"`
	LastAckTime     time.Time `json:"last-ack-time,omitzero"`
	DroppedTransits uint64    `json:"dropped-transits"`
}

// Underlay is the underlay's state: the level and drift checks it runs
// under, its devices and the mutations proposed to them.
type Underlay struct {
	Level           uint8      `json:"level"`
	CompilerFrozen  bool       `json:"compiler-frozen"`
	DriftIntervalMS uint32     `json:"drift-interval-ms"`
	DriftDetected   bool       `json:"drift-detected"`
	LastDriftCheck  time.Time  `json:"last-drift-check,omitzero"`
	Waiting         uint32     `json:"waiting"`
	Devices         []Device   `json:"devices"`
	Mutations       []Mutation `json:"mutations"`
}

// Device is one underlay device as the underlay reports it.
type Device struct {
	Name       string    `json:"name"`
	Address    string    `json:"address,omitempty"`
	Vendor     string    `json:"vendor,omitempty"`
	Role       string    `json:"role,omitempty"`
	Status     string    `json:"status"`
	Reachable  bool      `json:"reachable"`
	Watch      string    `json:"watch,omitempty"`
	LastPush   time.Time `json:"last-push,omitzero"`
	LastError  string    `json:"last-error,omitempty"`
	Drift      bool      `json:"drift"`
	DriftSince time.Time `json:"drift-since,omitzero"`
	DriftPaths []string  `json:"drift-paths,omitempty"`
	LastSync   time.Time `json:"last-sync,omitzero"`
}

// Mutation is one proposed underlay change and what became of it.
type Mutation struct {
	ID          string           `json:"id"`
	Proposer    string           `json:"proposer,omitempty"`
	Description string           `json:"description,omitempty"`
	Devices     []string         `json:"devices,omitempty"`
	VLANs       []uint16         `json:"vlans,omitempty"`
	Emergency   bool             `json:"emergency"`
	Execute     bool             `json:"execute"`
	Tier        string           `json:"tier,omitempty"`
	Status      string           `json:"status"`
	Reason      string           `json:"reason,omitempty"`
	Compiled    time.Time        `json:"compiled,omitzero"`
	Executed    time.Time        `json:"executed,omitzero"`
	Level       uint8            `json:"posture-level,omitempty"`
	Results     []MutationResult `json:"results,omitempty"`
}

// MutationResult is a mutation's outcome on one device.
type MutationResult struct {
	Device string `json:"device"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Section names one part of the summary, for followers that recompute
// only what a commit touched.
type Section int

// The sections.
const (
	SectionSystem Section = iota
	SectionPosture
	SectionRoutes
	SectionMesh
	SectionSessions
	SectionNotary
	SectionUnderlay
	numSections
)

// Sections are all sections.
func Sections() []Section {
	out := make([]Section, numSections)
	for i := range out {
		out[i] = Section(i)
	}
	return out
}

// Prefixes returns the schema paths each section reads, by section.
func Prefixes() map[Section][]string {
	k := kedgepath.Root().Kedge()
	return map[Section][]string{
		SectionSystem:   {k.System().SchemaPath()},
		SectionPosture:  {k.Posture().SchemaPath()},
		SectionRoutes:   {k.Routes().SchemaPath()},
		SectionMesh:     {k.Mesh().SchemaPath()},
		SectionSessions: {k.Sessions().SchemaPath()},
		SectionNotary:   {k.Notary().SchemaPath()},
		SectionUnderlay: {k.Underlay().SchemaPath()},
	}
}

// Of summarizes the whole tree.
func Of(t *tree.Tree) *Node {
	n := &Node{}
	for _, s := range Sections() {
		Fill(n, t, s)
	}
	return n
}

// Fill recomputes one section of n from t.
func Fill(n *Node, t *tree.Tree, s Section) {
	k := kedgetree.Of(t).Kedge()
	switch s {
	case SectionSystem:
		n.System, n.Backends = system(k)
	case SectionPosture:
		n.Posture = posture(k)
	case SectionRoutes:
		n.Routes = routes(k)
	case SectionMesh:
		n.Mesh = mesh(k)
	case SectionSessions:
		n.Sessions = sessions(k)
	case SectionNotary:
		n.Notary = notary(k)
	case SectionUnderlay:
		n.Underlay = underlay(k)
	}
}

// ts converts a timestamp-ns leaf (0: unset).
func ts(ns uint64, ok bool) time.Time {
	if !ok || ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func system(k kedgetree.Kedge) (System, []Backend) {
	st := k.System().State()
	s := System{}
	s.Node, _ = st.NodeName()
	s.Cluster, _ = st.Cluster()
	role, _ := st.Role()
	s.Role = string(role)
	s.Version, _ = st.Version()
	s.BootTime = ts(st.BootTime())
	bs := []Backend{}
	for b := range k.System().Backends().Backend().All() {
		x := Backend{}
		x.Name, _ = b.State().Name()
		x.Active, _ = b.State().Active()
		x.Reason, _ = b.State().Reason()
		bs = append(bs, x)
	}
	slices.SortFunc(bs, func(a, b Backend) int { return cmp.Compare(a.Name, b.Name) })
	return s, bs
}

func posture(k kedgetree.Kedge) Posture {
	st := k.Posture().State()
	p := Posture{History: []Transition{}}
	p.Level, _ = st.Level()
	p.Effective, _ = st.EffectiveLevel()
	src, _ := st.Source()
	p.Source = string(src)
	p.Sequence, _ = st.Sequence()
	if cc, cs := k.Posture().Cluster().Config(), k.Posture().Cluster().State(); cc.Exists() || cs.Exists() {
		c := &ClusterPosture{}
		c.Level, _ = cc.Level()
		if c.Object, _ = cc.Object(); c.Object == "" {
			c.Object, _ = cs.Object()
		}
		c.Connected, _ = cs.Connected()
		c.LastSync = ts(cs.LastSync())
		p.Cluster = c
	}
	if lt := st.LastTransition(); lt.Exists() {
		t := Transition{Steps: []Step{}}
		t.From, _ = lt.FromLevel()
		t.To, _ = lt.ToLevel()
		t.Started = ts(lt.Started())
		d, _ := lt.DurationNs()
		t.Duration = time.Duration(d)
		r, _ := lt.Result()
		t.Result = string(r)
		for e := range lt.Steps().Step().All() {
			s := Step{}
			es := e.State()
			s.Index, _ = es.Index()
			s.Name, _ = es.Name()
			s.Started = ts(es.Started())
			d, _ := es.DurationNs()
			s.Duration = time.Duration(d)
			r, _ := es.Result()
			s.Result = string(r)
			s.Error, _ = es.Error()
			t.Steps = append(t.Steps, s)
		}
		slices.SortFunc(t.Steps, func(a, b Step) int { return cmp.Compare(a.Index, b.Index) })
		p.Last = &t
	}
	for e := range k.Posture().History().Transition().All() {
		es := e.State()
		t := Transition{}
		t.Sequence, _ = es.Sequence()
		t.From, _ = es.FromLevel()
		t.To, _ = es.ToLevel()
		t.Started = ts(es.Started())
		d, _ := es.DurationNs()
		t.Duration = time.Duration(d)
		r, _ := es.Result()
		t.Result = string(r)
		p.History = append(p.History, t)
	}
	slices.SortFunc(p.History, func(a, b Transition) int { return cmp.Compare(a.Sequence, b.Sequence) })
	return p
}

// RouteClass returns a route's class: its config's, else the YANG
// default (pod).
func RouteClass(r kedgetree.Kedge_Routes_Route) string {
	if c, ok := r.Config().Class(); ok {
		return string(c)
	}
	return string(kedgepath.RouteClassPod)
}

// RouteStatus returns a route's state status, or StatusUnreported.
func RouteStatus(r kedgetree.Kedge_Routes_Route) string {
	if s, ok := r.State().Status(); ok {
		return string(s)
	}
	return StatusUnreported
}

func routes(k kedgetree.Kedge) Routes {
	classes := kedgepath.RouteClassValues()
	idx := make(map[string]int, len(classes))
	out := Routes{ByClass: make([]ClassCount, len(classes))}
	for i, c := range classes {
		idx[string(c)] = i
		out.ByClass[i] = ClassCount{Class: string(c), Status: map[string]int{}}
		for _, s := range RouteStatuses {
			out.ByClass[i].Status[s] = 0
		}
	}
	for r := range k.Routes().Route().All() {
		i, ok := idx[RouteClass(r)]
		if !ok {
			continue // a class this build does not know cannot be in a valid tree
		}
		out.Total++
		out.ByClass[i].Total++
		out.ByClass[i].Status[RouteStatus(r)]++
	}
	return out
}

func mesh(k kedgetree.Kedge) Mesh {
	st := k.Mesh().State()
	m := Mesh{Peers: []Peer{}}
	m.Interface, _ = st.Interface()
	s, _ := st.Status()
	m.Status = string(s)
	m.PublicKey, _ = st.PublicKey()
	m.Endpoint, _ = st.Endpoint()
	m.Error, _ = st.Error()
	for e := range k.Mesh().Peers().Peer().All() {
		c, ps := e.Config(), e.State()
		p := Peer{Status: StatusUnreported}
		p.Name, _ = e.Name()
		p.Endpoint, _ = c.Endpoint()
		p.AllowedIPs = c.AllowedIps()
		p.Cluster, _ = c.Cluster()
		p.Critical, _ = c.Critical()
		if s, ok := ps.Status(); ok {
			p.Status = string(s)
		}
		p.LastHandshake = ts(ps.LastHandshake())
		p.RxBytes, _ = ps.RxBytes()
		p.TxBytes, _ = ps.TxBytes()
		p.Error, _ = ps.Error()
		m.Peers = append(m.Peers, p)
	}
	slices.SortFunc(m.Peers, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
	return m
}

func sessions(k kedgetree.Kedge) []Session {
	out := []Session{}
	for e := range k.Sessions().Session().All() {
		st := e.State()
		s := Session{}
		s.ID, _ = e.Id()
		s.Peer, _ = st.Peer()
		s.Node, _ = st.Node()
		s.Cluster, _ = st.Cluster()
		s.Local, _ = st.Local()
		tier, _ := st.Tier()
		s.Tier = string(tier)
		typ, _ := st.Type()
		s.Type = string(typ)
		s.Critical, _ = st.Critical()
		s.Effective, _ = st.EffectivePosture()
		status, _ := st.Status()
		s.Status = string(status)
		s.Started = ts(st.Started())
		s.Closed = ts(st.Closed())
		s.CloseReason, _ = st.CloseReason()
		s.BytesIn, _ = st.BytesIn()
		s.BytesOut, _ = st.BytesOut()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func notary(k kedgetree.Kedge) Notary {
	st := k.Notary().State()
	n := Notary{}
	n.SamplingPercent, _ = st.SamplingPercent()
	f, _ := st.FlushMode()
	n.FlushMode = string(f)
	n.PayloadHashing, _ = st.PayloadHashing()
	n.Records, _ = st.Records()
	n.LogSize, _ = st.LogSize()
	n.RootHash, _ = st.RootHash()
	n.LastFlush = ts(st.LastFlush())
	n.LastCheckpointSize, _ = st.LastCheckpointSize()
	us, _ := st.UpstreamState()
	n.UpstreamState = string(us)
	n.UpstreamError, _ = st.UpstreamError()
	n.LastAckSize, _ = st.LastAckSize()
	n.LastAckTime = ts(st.LastAckTime())
	n.DroppedTransits, _ = st.DroppedTransits()
	return n
}

func underlay(k kedgetree.Kedge) Underlay {
	st := k.Underlay().State()
	u := Underlay{Devices: []Device{}, Mutations: []Mutation{}}
	u.Level, _ = st.Level()
	u.CompilerFrozen, _ = st.CompilerFrozen()
	u.DriftIntervalMS, _ = st.DriftIntervalMs()
	u.DriftDetected, _ = st.DriftDetected()
	u.LastDriftCheck = ts(st.LastDriftCheck())
	u.Waiting, _ = st.Waiting()
	for e := range k.Underlay().Devices().Device().All() {
		ds := e.State()
		d := Device{Status: StatusUnreported}
		d.Name, _ = e.Name()
		d.Address, _ = e.Config().Address()
		d.Vendor, _ = e.Config().Vendor()
		d.Role, _ = e.Config().Role()
		if s, ok := ds.Status(); ok {
			d.Status = string(s)
		}
		d.Reachable, _ = ds.Reachable()
		w, _ := ds.Watch()
		d.Watch = string(w)
		d.LastPush = ts(ds.LastPush())
		d.LastError, _ = ds.LastError()
		d.Drift, _ = ds.Drift()
		d.DriftSince = ts(ds.DriftSince())
		d.DriftPaths = ds.DriftPaths()
		d.LastSync = ts(ds.LastSync())
		u.Devices = append(u.Devices, d)
	}
	slices.SortFunc(u.Devices, func(a, b Device) int { return cmp.Compare(a.Name, b.Name) })
	for e := range k.Underlay().Mutations().Mutation().All() {
		c, ms := e.Config(), e.State()
		m := Mutation{Status: StatusUnreported}
		m.ID, _ = e.Id()
		m.Proposer, _ = c.Proposer()
		m.Description, _ = c.Description()
		m.Devices = c.Devices()
		m.VLANs = c.Vlans()
		m.Emergency, _ = c.Emergency()
		m.Execute, _ = c.Execute()
		tier, _ := c.Tier()
		m.Tier = string(tier)
		if s, ok := ms.Status(); ok {
			m.Status = string(s)
		}
		m.Reason, _ = ms.Reason()
		m.Compiled = ts(ms.Compiled())
		m.Executed = ts(ms.Executed())
		m.Level, _ = ms.PostureLevel()
		for r := range e.Results().Result().All() {
			x := MutationResult{}
			x.Device, _ = r.Device()
			s, _ := r.State().Status()
			x.Status = string(s)
			x.Error, _ = r.State().Error()
			m.Results = append(m.Results, x)
		}
		slices.SortFunc(m.Results, func(a, b MutationResult) int { return cmp.Compare(a.Device, b.Device) })
		u.Mutations = append(u.Mutations, m)
	}
	slices.SortFunc(u.Mutations, func(a, b Mutation) int { return cmp.Compare(a.ID, b.ID) })
	return u
}
