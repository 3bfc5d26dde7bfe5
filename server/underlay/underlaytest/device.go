// Package underlaytest is an OpenConfig network device for tests and
// benchmarks: a gNMI target over TLS (optionally mTLS and a password)
// holding an OpenConfig configuration (gen/oc) and serving Get, Set with
// the commit-confirmed extension (gnmi_ext.Commit: commit, confirm, cancel,
// rollback on timeout) and Subscribe STREAM ON_CHANGE.
//
// Every Set is applied to a copy of the running configuration and
// validated against the generated OpenConfig schema before it becomes
// running; an invalid one is refused with INVALID_ARGUMENT and changes
// nothing. So what the underlay compiler produces is checked by the real
// models, not recorded. Faults (a device going down, refusing Sets, never
// acknowledging a confirm) and changes made behind Kedge's back are
// injected through methods.
package underlaytest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/oc"
)

// Options configure a Device.
type Options struct {
	// TLS is the server's TLS configuration (required: the underlay
	// client speaks TLS only). Set ClientCAs and ClientAuth for mTLS.
	TLS *tls.Config
	// CommitConfirmed enables the commit-confirmed extension; without it
	// a Set that carries one is UNIMPLEMENTED.
	CommitConfirmed bool
	// OnChange enables Subscribe; without it Subscribe is UNIMPLEMENTED.
	OnChange bool
	// Username and Password, when set, are required in every RPC's
	// metadata.
	Username, Password string
}

// Fault is what the device does wrong on purpose.
type Fault struct {
	// RejectSets, when not OK, fails every configuration Set with it.
	RejectSets codes.Code
	// HangConfirms makes a confirm never answer (it waits for the
	// caller's deadline), so the commit rolls back on its timer.
	HangConfirms bool
	// Rewrite, when set, alters every accepted Set's result before it
	// becomes running: a device that does not hold what it acknowledged.
	Rewrite func(*oc.Device)
}

// Stats count what the device did.
type Stats struct {
	Sets      int // configuration Sets applied
	Refused   int // Sets refused (schema, fault, busy)
	Confirms  int
	Cancels   int
	Rollbacks int // commits rolled back on their timer
	Gets      int
	// SetTime is the time spent applying and validating configuration
	// Sets (benchmarks tell the device's share of a push from Kedge's).
	SetTime time.Duration
}

// Device is a running test device. All methods are safe for concurrent use.
type Device struct {
	gpb.UnimplementedGNMIServer
	opt    Options
	schema *ytypes.Schema

	mu      sync.Mutex
	running *oc.Device
	pending *pendingCommit
	subs    map[*subscriber]struct{}
	fault   Fault
	stats   Stats
	changed chan struct{} // closed and replaced on every change
	// rendered caches Get's JSON of the running configuration by path,
	// until the next change (a polled device is read far more often than
	// it changes).
	rendered map[string][]byte
	version  uint64 // counts changes of running
	// changes waits for the publisher, which computes each change's
	// notification after the RPC that made it has answered, as a device
	// streams telemetry after it acknowledges a commit.
	changes   []change
	changesCh chan struct{}
	stop      chan struct{}
	pubDone   chan struct{}
	published time.Time // see Published
	addr      netip.AddrPort
	ln        net.Listener
	srv       *grpc.Server
}

type pendingCommit struct {
	id       string
	rollback *oc.Device
	timer    *time.Timer
}

// New starts a device listening on a free loopback port.
func New(o Options) (*Device, error) {
	if o.TLS == nil {
		return nil, errors.New("start test device: no TLS configuration")
	}
	s, err := oc.Schema()
	if err != nil {
		return nil, fmt.Errorf("start test device: %w", err)
	}
	d := &Device{opt: o, schema: s, running: &oc.Device{}, subs: map[*subscriber]struct{}{}, changed: make(chan struct{}),
		changesCh: make(chan struct{}, 1), stop: make(chan struct{}), pubDone: make(chan struct{})}
	if err := d.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	go d.publisher()
	return d, nil
}

func (d *Device) listen(at string) error {
	ln, err := net.Listen("tcp", at)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(d.opt.TLS)))
	gpb.RegisterGNMIServer(srv, d)
	d.mu.Lock()
	d.ln, d.srv = ln, srv
	d.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	d.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // Serve returns when Stop closes it
	return nil
}

// Addr is the device's gNMI address.
func (d *Device) Addr() netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Down stops serving (connections are cut, the port is closed); the
// configuration and a pending commit's timer stay, as on a device whose
// management plane fails.
func (d *Device) Down() {
	d.mu.Lock()
	srv := d.srv
	d.srv, d.ln = nil, nil
	d.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Up serves again on the same address.
func (d *Device) Up() error {
	d.mu.Lock()
	up, at := d.srv != nil, d.addr.String()
	d.mu.Unlock()
	if up {
		return nil
	}
	return d.listen(at)
}

// Close stops the device for good.
func (d *Device) Close() {
	d.Down()
	d.mu.Lock()
	if d.pending != nil {
		d.pending.timer.Stop()
		d.pending = nil
	}
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.pubDone
}

// SetFault replaces the injected faults.
func (d *Device) SetFault(f Fault) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fault = f
}

// Stats returns a copy of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Config returns a copy of the running configuration.
func (d *Device) Config() *oc.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return clone(d.running)
}

// Pending reports whether a commit awaits confirmation.
func (d *Device) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending != nil
}

// Changed returns a channel closed at the next change of the running
// configuration (tests wait on it instead of sleeping).
func (d *Device) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// WaitFor waits until cond holds for the running configuration or ctx ends.
func (d *Device) WaitFor(ctx context.Context, cond func(*oc.Device) bool) error {
	for {
		ch := d.Changed()
		if cond(d.Config()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for device configuration: %w", context.Cause(ctx))
		}
	}
}

// Mutate changes the running configuration behind Kedge's back (an
// operator on the device's CLI): fn edits a copy, which must validate.
func (d *Device) Mutate(fn func(*oc.Device)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := clone(d.running)
	fn(next)
	if err := next.Validate(); err != nil {
		return fmt.Errorf("mutate device: %w", err)
	}
	d.setRunningLocked(next)
	return nil
}

func clone(c *oc.Device) *oc.Device {
	cp, err := ygot.DeepCopy(c)
	if err != nil {
		panic(fmt.Sprintf("copy configuration: %v", err)) // a generated struct always copies
	}
	return cp.(*oc.Device)
}

// setRunningLocked installs next and tells subscribers what changed.
func (d *Device) setRunningLocked(next *oc.Device) {
	old := d.running
	d.running = next
	d.rendered = nil
	d.version++
	close(d.changed)
	d.changed = make(chan struct{})
	if len(d.subs) > 0 {
		// Configurations are never changed once running (every change
		// copies), so the publisher may read both later.
		d.changes = append(d.changes, change{old: old, next: next, version: d.version})
		select {
		case d.changesCh <- struct{}{}:
		default:
		}
	}
}

func (d *Device) authorize(ctx context.Context) error {
	if d.opt.Username == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if first(md.Get("username")) != d.opt.Username || first(md.Get("password")) != d.opt.Password {
		return status.Error(codes.Unauthenticated, "bad username or password")
	}
	return nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Capabilities names the OpenConfig models and JSON_IETF.
func (d *Device) Capabilities(ctx context.Context, _ *gpb.CapabilityRequest) (*gpb.CapabilityResponse, error) {
	if err := d.authorize(ctx); err != nil {
		return nil, err
	}
	return &gpb.CapabilityResponse{
		SupportedModels: []*gpb.ModelData{
			{Name: "openconfig-interfaces", Organization: "OpenConfig working group"},
			{Name: "openconfig-if-ethernet", Organization: "OpenConfig working group"},
			{Name: "openconfig-if-ip", Organization: "OpenConfig working group"},
			{Name: "openconfig-vlan", Organization: "OpenConfig working group"},
		},
		SupportedEncodings: []gpb.Encoding{gpb.Encoding_JSON_IETF, gpb.Encoding_JSON},
		GNMIVersion:        "0.10.0",
	}, nil
}

// Set applies deletes, replaces and updates to a copy, validates it with
// the OpenConfig schema and makes it running, or handles a
// commit-confirmed confirm, cancel or new rollback duration.
func (d *Device) Set(ctx context.Context, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	if err := d.authorize(ctx); err != nil {
		return nil, err
	}
	var cm *gnmi_ext.Commit
	for _, x := range req.GetExtension() {
		if c := x.GetCommit(); c != nil {
			cm = c
		}
	}
	if cm != nil && !d.opt.CommitConfirmed {
		return nil, status.Error(codes.Unimplemented, "commit-confirmed is not supported")
	}
	if cm != nil && cm.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "commit extension without an id")
	}
	resp := &gpb.SetResponse{Timestamp: time.Now().UnixNano()}
	switch {
	case cm.GetConfirm() != nil:
		d.mu.Lock()
		hang := d.fault.HangConfirms
		d.mu.Unlock()
		if hang {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if err := d.pendingIs(cm.GetId()); err != nil {
			return nil, err
		}
		d.pending.timer.Stop()
		d.pending = nil
		d.stats.Confirms++
		return resp, nil
	case cm.GetCancel() != nil:
		d.mu.Lock()
		defer d.mu.Unlock()
		if err := d.pendingIs(cm.GetId()); err != nil {
			return nil, err
		}
		d.pending.timer.Stop()
		rb := d.pending.rollback
		d.pending = nil
		d.setRunningLocked(rb)
		d.stats.Cancels++
		return resp, nil
	case cm.GetSetRollbackDuration() != nil:
		d.mu.Lock()
		defer d.mu.Unlock()
		if err := d.pendingIs(cm.GetId()); err != nil {
			return nil, err
		}
		d.pending.timer.Reset(cm.GetSetRollbackDuration().GetRollbackDuration().AsDuration())
		return resp, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending != nil {
		d.stats.Refused++
		return nil, status.Errorf(codes.FailedPrecondition, "commit %q awaits confirmation", d.pending.id)
	}
	if c := d.fault.RejectSets; c != codes.OK {
		d.stats.Refused++
		return nil, status.Error(c, "the device refuses configuration changes (injected fault)")
	}
	setStart := time.Now()
	defer func() { d.stats.SetTime += time.Since(setStart) }()
	next := clone(d.running)
	if err := d.apply(next, req); err != nil {
		d.stats.Refused++
		return nil, status.Errorf(codes.InvalidArgument, "apply set: %v", err)
	}
	if err := next.Validate(); err != nil {
		d.stats.Refused++
		return nil, status.Errorf(codes.InvalidArgument, "configuration fails the OpenConfig schema: %v", err)
	}
	if d.fault.Rewrite != nil {
		d.fault.Rewrite(next)
	}
	for _, p := range req.GetDelete() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: p, Op: gpb.UpdateResult_DELETE})
	}
	for _, u := range req.GetReplace() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.GetPath(), Op: gpb.UpdateResult_REPLACE})
	}
	for _, u := range req.GetUpdate() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.GetPath(), Op: gpb.UpdateResult_UPDATE})
	}
	old := d.running
	d.setRunningLocked(next)
	d.stats.Sets++
	if cm.GetCommit() != nil {
		dur := 600 * time.Second
		if rd := cm.GetCommit().GetRollbackDuration(); rd != nil {
			dur = rd.AsDuration()
		}
		p := &pendingCommit{id: cm.GetId(), rollback: old}
		p.timer = time.AfterFunc(dur, func() { d.rollbackOnTimer(p) })
		d.pending = p
	}
	return resp, nil
}

func (d *Device) pendingIs(id string) error {
	if d.pending == nil {
		return status.Errorf(codes.FailedPrecondition, "no commit %q awaits confirmation", id)
	}
	if d.pending.id != id {
		return status.Errorf(codes.InvalidArgument, "commit %q awaits confirmation, not %q", d.pending.id, id)
	}
	return nil
}

func (d *Device) rollbackOnTimer(p *pendingCommit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending != p {
		return
	}
	d.pending = nil
	d.setRunningLocked(p.rollback)
	d.stats.Rollbacks++
}

func (d *Device) apply(dev *oc.Device, req *gpb.SetRequest) error {
	root := d.schema.RootSchema()
	pfx := req.GetPrefix()
	for _, p := range req.GetDelete() {
		if err := ytypes.DeleteNode(root, dev, join(pfx, p)); err != nil {
			return fmt.Errorf("delete %v: %w", p, err)
		}
	}
	for _, u := range req.GetReplace() {
		p := join(pfx, u.GetPath())
		if len(p.GetElem()) == 0 {
			*dev = oc.Device{}
		} else if err := ytypes.DeleteNode(root, dev, p); err != nil {
			return fmt.Errorf("replace %v: %w", p, err)
		}
		if err := d.setVal(dev, p, u.GetVal()); err != nil {
			return err
		}
	}
	for _, u := range req.GetUpdate() {
		if err := d.setVal(dev, join(pfx, u.GetPath()), u.GetVal()); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) setVal(dev *oc.Device, p *gpb.Path, v *gpb.TypedValue) error {
	if len(p.GetElem()) == 0 {
		js := v.GetJsonIetfVal()
		if js == nil {
			js = v.GetJsonVal()
		}
		if err := oc.Unmarshal(js, dev); err != nil {
			return fmt.Errorf("set /: %w", err)
		}
		return nil
	}
	if err := ytypes.SetNode(d.schema.RootSchema(), dev, p, v, &ytypes.InitMissingElements{}); err != nil {
		return fmt.Errorf("set %v: %w", p, err)
	}
	return nil
}

func join(pfx, p *gpb.Path) *gpb.Path {
	if len(pfx.GetElem()) == 0 {
		return &gpb.Path{Elem: p.GetElem()}
	}
	return &gpb.Path{Elem: append(append([]*gpb.PathElem{}, pfx.GetElem()...), p.GetElem()...)}
}

// Get answers each path with its JSON_IETF value: the root, /interfaces
// and /vlans whole, or any node of the configuration.
func (d *Device) Get(ctx context.Context, req *gpb.GetRequest) (*gpb.GetResponse, error) {
	if err := d.authorize(ctx); err != nil {
		return nil, err
	}
	switch req.GetEncoding() {
	case gpb.Encoding_JSON, gpb.Encoding_JSON_IETF:
	default:
		return nil, status.Errorf(codes.Unimplemented, "encoding %v: only JSON_IETF", req.GetEncoding())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Gets++
	n := &gpb.Notification{Timestamp: time.Now().UnixNano()}
	for _, p := range req.GetPath() {
		full := join(req.GetPrefix(), p)
		key := full.String()
		js, ok := d.rendered[key]
		if !ok {
			var err error
			if js, err = d.render(d.running, full); err != nil {
				return nil, err
			}
			if d.rendered == nil {
				d.rendered = map[string][]byte{}
			}
			d.rendered[key] = js
		}
		n.Update = append(n.Update, &gpb.Update{Path: full, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}}})
	}
	return &gpb.GetResponse{Notification: []*gpb.Notification{n}}, nil
}

func (d *Device) render(cfg *oc.Device, p *gpb.Path) ([]byte, error) {
	el := p.GetElem()
	top := func(c *oc.Device) ([]byte, error) {
		return ygot.Marshal7951(c, &ygot.RFC7951JSONConfig{AppendModuleName: true})
	}
	switch {
	case len(el) == 0:
		return top(cfg)
	case len(el) == 1 && len(el[0].GetKey()) == 0 && (el[0].GetName() == "interfaces" || el[0].GetName() == "vlans"):
		part := &oc.Device{}
		if el[0].GetName() == "interfaces" {
			part.Interface = cfg.Interface
		} else {
			part.Vlan = cfg.Vlan
		}
		whole, err := top(part)
		if err != nil {
			return nil, err
		}
		// The value at /interfaces is what the root holds under it.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(whole, &m); err != nil {
			return nil, fmt.Errorf("render %s: %w", el[0].GetName(), err)
		}
		for _, v := range m {
			return v, nil
		}
		return []byte("{}"), nil
	}
	nodes, err := ytypes.GetNode(d.schema.RootSchema(), cfg, p)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "get %v: %v", p, err)
	}
	if len(nodes) == 0 || nodes[0].Data == nil || (reflect.ValueOf(nodes[0].Data).Kind() == reflect.Pointer && reflect.ValueOf(nodes[0].Data).IsNil()) {
		return nil, status.Errorf(codes.NotFound, "get %v: no data", p)
	}
	if gs, ok := nodes[0].Data.(ygot.GoStruct); ok {
		return ygot.Marshal7951(gs, &ygot.RFC7951JSONConfig{AppendModuleName: true})
	}
	return ygot.Marshal7951(nodes[0].Data)
}
