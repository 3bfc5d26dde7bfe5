package shellstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/shellstream/spiffetest"
)

const testAudience = "kedge/node-a"

// fakeClock fires timers only when advanced.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now(), timers: map[*fakeTimer]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	if d <= 0 { // as time.AfterFunc: due now
		go f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers[t] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[t]
		delete(c.timers, t)
		return ok
	}
}

// Advance moves time and runs the timers that came due, each in its own
// goroutine, in deadline order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		go t.f()
	}
}

type mapTiers map[string]string

func (m mapTiers) SPIFFETier(id string) (string, bool) {
	t, ok := m[id]
	return t, ok
}

// recorder keeps transit events.
type recorder struct {
	mu     sync.Mutex
	events []Event
	wake   chan struct{}
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{}, 1)} }

func (r *recorder) Transit(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	poke(r.wake)
}

// waitFor returns the events of session id once one of kind arrived.
func (r *recorder) waitFor(t testing.TB, id string, kind EventKind) []Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		var out []Event
		found := false
		for _, e := range r.events {
			if e.SessionID == id {
				out = append(out, e)
				found = found || e.Kind == kind
			}
		}
		r.mu.Unlock()
		if found {
			return out
		}
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("no %s event for session %s; have %+v", kind, id, out)
		}
	}
}

// endpoint is a local service behind Kedge: it records each connection's
// preamble and echoes the bytes back (or floods them with flood set).
type endpoint struct {
	ln        net.Listener
	mu        sync.Mutex
	preambles []Preamble
	conns     []net.Conn
	flood     bool
	got       chan Preamble
}

func startEndpoint(t testing.TB, dir, name string, flood bool) (*endpoint, Endpoint) {
	t.Helper()
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{ln: ln, flood: flood, got: make(chan Preamble, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			go e.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
	})
	return e, Endpoint{Network: "unix", Address: path}
}

func (e *endpoint) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var p Preamble
	if json.Unmarshal(line, &p) == nil {
		e.mu.Lock()
		e.preambles = append(e.preambles, p)
		e.mu.Unlock()
		select {
		case e.got <- p:
		default: // nobody is looking (benchmarks open thousands)
		}
	}
	if e.flood {
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	io.Copy(c, r)
}

// harness is one node's Shellstream service on a unix socket, with a
// test trust domain and Workload API.
type harness struct {
	t      testing.TB
	auth   *spiffetest.Authority
	wl     *spiffetest.WorkloadAPI
	svc    *Service
	clock  *fakeClock
	rec    *recorder
	sock   string
	cc     *grpc.ClientConn
	tcp    *grpc.ClientConn // over a listener that reports a non-loopback peer
	eps    map[session.Type]*endpoint
	tiers  mapTiers
	source *workloadapi.BundleSource
	client *workloadapi.Client
}

type harnessOpts struct {
	realClock bool
	flood     bool
	mutate    func(*Options)
}

func newHarness(t testing.TB, ho harnessOpts) *harness {
	t.Helper()
	a, err := spiffetest.NewAuthority("kedge.test")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := spiffetest.StartWorkloadAPI(a, a.ID("/kedge/node-a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wl.Close)
	ctx := context.Background()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(wl.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	src, err := workloadapi.NewBundleSource(ctx, workloadapi.WithClient(client))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })

	dir, err := os.MkdirTemp("", fmt.Sprintf("kedge-ss-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{t: t, auth: a, wl: wl, rec: newRecorder(), eps: map[session.Type]*endpoint{}, source: src, client: client,
		tiers: mapTiers{
			a.ID("/ops/master").String():     accord.TierMaster,
			a.ID("/ops/owner").String():      accord.TierSiteOwner,
			a.ID("/ops/operator").String():   accord.TierOperator,
			a.ID("/ops/observer").String():   accord.TierObserver,
			a.ID("/kedge/node-b").String():   accord.TierOperator,
			a.ID("/kedge/node-a").String():   accord.TierMaster,
			a.ID("/elsewhere/none").String(): "not-a-tier",
		}}
	eps := map[session.Type]Endpoint{}
	for _, typ := range session.Types {
		e, ep := startEndpoint(t, dir, string(typ), ho.flood)
		h.eps[typ], eps[typ] = e, ep
	}
	opts := Options{
		WorkloadAPI: client, Bundles: src, Tiers: h.tiers, Recorder: h.rec, ServerID: testAudience,
		Endpoints: eps, HandshakeTimeout: 2 * time.Hour, SendTimeout: time.Hour, DrainTimeout: 30 * time.Second,
	}
	if !ho.realClock {
		h.clock = newFakeClock()
		opts.Clock = h.clock
	}
	if ho.mutate != nil {
		ho.mutate(&opts)
	}
	h.svc, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.svc.Start(ctx)
	t.Cleanup(func() { h.svc.Close() })

	h.sock = filepath.Join(dir, "kedge.sock")
	g := grpc.NewServer()
	h.svc.Register(g)
	ln, err := net.Listen("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(remoteListener{tl})
	t.Cleanup(g.Stop)
	if h.cc, err = grpc.NewClient("unix://"+h.sock, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cc.Close() })
	if h.tcp, err = grpc.NewClient(tl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.tcp.Close() })
	return h
}

// remoteListener makes its connections look as if they came from a
// remote node (TEST-NET-1), so unit tests exercise the remote-origin
// rules; the network-namespace test in tests/ covers real remote peers.
type remoteListener struct{ net.Listener }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 40000}
}

func (h *harness) level(l uint8) Outcome {
	h.t.Helper()
	a, err := accord.Default(l)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := h.svc.ApplyLevel(context.Background(), l, a)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// config returns a client config for identity path with a fresh SAT.
func (h *harness) config(path string, typ session.Type, level uint8) ClientConfig {
	h.t.Helper()
	id := h.auth.ID(path)
	tok, err := h.auth.JWTSVID(spiffetest.Claims{Subject: id, Audience: []string{testAudience}})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.configWith(id, tok, typ, level)
}

func (h *harness) configWith(id spiffeid.ID, sat string, typ session.Type, level uint8) ClientConfig {
	h.t.Helper()
	svid, err := h.auth.X509SVID(id, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return ClientConfig{SAT: sat, Chain: svid.Certificates, Key: svid.PrivateKey, Audience: testAudience,
		Type: typ, Node: "node-b", Cluster: "lab", Level: level}
}

func (h *harness) open(cc *grpc.ClientConn, cfg ClientConfig) (*ClientSession, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	return Open(ctx, cc, cfg)
}

func (h *harness) mustOpen(cc *grpc.ClientConn, cfg ClientConfig) *ClientSession {
	h.t.Helper()
	cs, err := h.open(cc, cfg)
	if err != nil {
		h.t.Fatalf("open %s session: %v", cfg.Type, err)
	}
	return cs
}

func denied(t testing.TB, err error, want pb.DenyReason) *DeniedError {
	t.Helper()
	var d *DeniedError
	if !errors.As(err, &d) {
		t.Fatalf("error %v, want a DENY %s", err, want)
	}
	if d.Reason != want {
		t.Fatalf("DENY %s (%s), want %s", d.Reason, d.Text, want)
	}
	return d
}

// recvKind reads frames until one of the wanted kind (DATA frames before
// it are skipped) and returns it.
func recvKind(t testing.TB, cs *ClientSession, kind string) *pb.SessionResponse {
	t.Helper()
	for {
		f, err := cs.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", kind, err)
		}
		if responseKind(f) == kind {
			return f
		}
		if responseKind(f) != "data" {
			t.Fatalf("got %s while waiting for %s", responseKind(f), kind)
		}
	}
}

// goroutines waits until the goroutine count is back to at most base (the
// server's per-stream goroutines end once their streams do) and fails
// with the stacks otherwise.
func goroutinesSettle(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, started with %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling a condition, not synchronising
	}
}
