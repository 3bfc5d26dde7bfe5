package target

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// wgKey returns a valid WireGuard public key, distinct per i.
func wgKey(i int) string {
	var b [32]byte
	b[0], b[1] = byte(i), byte(i>>8)
	return base64.StdEncoding.EncodeToString(b[:])
}

// loadPeers commits n mesh peers, each with its public key in config and
// in state: 2n+1 public-key leaves with the node's own.
func loadPeers(t testing.TB, st *store.Store, n int) {
	t.Helper()
	elems := func(s string) []*gpb.PathElem {
		e, err := tree.ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var cfg, state []store.Op
	for i := range n {
		p := fmt.Sprintf("/kedge/mesh/peers/peer[name=peer%d]", i)
		cfg = append(cfg, store.Op{Kind: store.OpUpdate, Path: elems(p + "/config"),
			Val: jsonIETF(fmt.Sprintf(`{"name":"peer%d","public-key":%q,"endpoint":"192.0.2.%d:51820","allowed-ips":["10.%d.%d.0/24"]}`, i, wgKey(i), i%250+1, i/250, i%250))})
		state = append(state, store.Op{Kind: store.OpUpdate, Path: elems(p + "/state/public-key"), Val: sval(wgKey(i))})
	}
	if _, err := st.Commit(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	state = append(state, store.Op{Kind: store.OpUpdate, Path: elems("/kedge/mesh/state/public-key"), Val: sval(wgKey(n))})
	if _, err := st.CommitState(context.Background(), state); err != nil {
		t.Fatal(err)
	}
}

// deepPath is n "..." then the given names.
func deepPath(n int, rest ...string) *gpb.Path {
	p := &gpb.Path{}
	for range n {
		p.Elem = append(p.Elem, &gpb.PathElem{Name: "..."})
	}
	for _, r := range rest {
		p.Elem = append(p.Elem, &gpb.PathElem{Name: r})
	}
	return p
}

// TestAbusivePathsAreBoundedAndUnique: with 1,000 mesh peers, paths that
// repeat "..." (9 times took 16.8 s and returned 203,448 updates for 2,076
// leaves at 4568498; 70 times held the read lock for 30 s) return every
// public key exactly once, well inside a deadline; a path longer than the
// limit and a Get over its leaf budget are refused, naming the limit.
func TestAbusivePathsAreBoundedAndUnique(t *testing.T) {
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Limits: Limits{GetLeaves: 5000}})
	const peers = 1000
	loadPeers(t, e.st, peers)
	for _, n := range []int{1, 9, 70, 5000} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := e.client.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{deepPath(n, "public-key")}, Encoding: gpb.Encoding_PROTO})
		cancel()
		if err != nil {
			t.Fatalf("%d × .../public-key: %v", n, err)
		}
		got := leaves(resp.GetNotification())
		seen := map[string]bool{}
		for _, l := range got {
			if seen[l] {
				t.Fatalf("%d × ...: %s returned twice", n, l)
			}
			seen[l] = true
		}
		if len(got) != 2*peers+1 {
			t.Fatalf("%d × ...: %d public keys, want %d", n, len(got), 2*peers+1)
		}
	}
	// Past the limit on elements, once runs of "..." are counted once.
	long := &gpb.Path{Elem: []*gpb.PathElem{{Name: "kedge"}}}
	for range tree.MaxPathElems {
		long.Elem = append(long.Elem, &gpb.PathElem{Name: "*"})
	}
	_, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{long}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprint(tree.MaxPathElems)) {
		t.Fatalf("a %d-element path: %v, want InvalidArgument naming the limit", len(long.Elem), err)
	}
	// Over the leaf budget: every peer has more than two leaves.
	_, err = e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/mesh")}, Encoding: gpb.Encoding_PROTO})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "5000") {
		t.Fatalf("a Get over its leaf budget: %v, want ResourceExhausted naming the limit", err)
	}
	_, err = e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/mesh")}, Encoding: gpb.Encoding_JSON_IETF})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a JSON Get over its leaf budget: %v, want ResourceExhausted", err)
	}
	// Within the budget the same tree reads fine.
	if _, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=peer7]")}, Encoding: gpb.Encoding_PROTO}); err != nil {
		t.Fatal(err)
	}
}

// expiring is a context whose deadline passes after its Err has been
// consulted a given number of times: a deadline that falls mid-walk,
// deterministically.
type expiring struct {
	context.Context
	mu     sync.Mutex
	left   int
	calls  int // Err calls after expiry
	done   chan struct{}
	closed bool
}

func newExpiring(after int) *expiring {
	return &expiring{Context: context.Background(), left: after, done: make(chan struct{})}
}

func (c *expiring) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left > 0 {
		c.left--
		return nil
	}
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	c.calls++
	return context.DeadlineExceeded
}

func (c *expiring) Done() <-chan struct{} { return c.done }

// TestGetStopsAtDeadline: a Get whose deadline passes while it walks
// stops at its next check and returns DEADLINE_EXCEEDED, instead of
// walking on (at 4568498 a Get never looked at its context).
func TestGetStopsAtDeadline(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	loadPeers(t, e.st, 1000)
	ctx := newExpiring(3)
	_, err := e.srv.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{deepPath(1, "public-key")}, Encoding: gpb.Encoding_PROTO})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Get past its deadline: %v, want DeadlineExceeded", err)
	}
	if ctx.calls != 1 {
		t.Fatalf("the walk checked its expired context %d times: it went on walking", ctx.calls)
	}
}

// stallClock records each wait for a stalled client; the test decides
// when the stall limit has passed (fire). A wait may end before it fires:
// the client's transport took a message after all.
type stallClock struct {
	mu     sync.Mutex
	waits  []chan time.Time
	fired  bool
	waited chan struct{} // signalled on each wait
	// at runs on each wait (the updates the stream had made by then).
	at func()
}

func (c *stallClock) Now() time.Time { return time.Now() }

func (c *stallClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waits = append(c.waits, ch)
	if c.fired {
		ch <- time.Now()
	}
	c.mu.Unlock()
	if c.at != nil {
		c.at()
	}
	select {
	case c.waited <- struct{}{}:
	default:
	}
	return ch
}

// fire makes every wait, past and future, see its limit pass.
func (c *stallClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fired = true
	for _, ch := range c.waits {
		select {
		case ch <- time.Now():
		default:
		}
	}
}

// TestStuckSubscriberIsBoundedThenEnded: a subscriber that never reads
// costs its stream a few notifications, not the sync (at 4568498 the
// whole sync was built in memory first, about 14 MB per stuck stream on
// 10,000 leaves), and once it has taken nothing for the stall limit its
// stream ends with RESOURCE_EXHAUSTED.
func TestStuckSubscriberIsBoundedThenEnded(t *testing.T) {
	clk := &stallClock{waited: make(chan struct{}, 1)}
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Clock: clk, Limits: Limits{StreamBuffer: 2}})
	var ops []store.Op
	const routes = 5000
	for i := range routes {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: gp(t, fmt.Sprintf("/kedge/routes/route[prefix=10.1.%d.%d/32][table=254]/config", i/256, i%256)).Elem,
			Val: jsonIETF(`{"next-hop":"192.0.2.1","device":"eth0","metric":5,"class":"pod","owner":"a-fairly-long-owner-name"}`)})
	}
	if _, err := e.st.Commit(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	var queued, most atomic.Int64
	e.srv.queued = func(n int) { queued.Add(int64(n)) }
	clk.at = func() {
		if q := queued.Load(); q > most.Load() {
			most.Store(q)
		}
	}
	// A client whose flow-control window stays at 64 KiB (gRPC grows it
	// with the bandwidth it measures, whether the client reads or not).
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, err := gpb.NewGNMIClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/routes")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-clk.waited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the stream never waited for its client (%d updates queued)", queued.Load())
	}
	clk.fire()
	got := 0
	for {
		r, err := sc.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("stuck stream ended with %v, want ResourceExhausted", err)
			}
			break
		}
		got += len(r.GetUpdate().GetUpdate())
	}
	// Whenever the producer had to wait, what it had made was the queue,
	// the messages gRPC took (its write quota and the client's window:
	// 128 KiB, about six notifications) and the one it held.
	bound := int64((2 + 7) * syncBatch)
	made := queued.Load()
	t.Logf("%d updates made (at most %d at a wait), %d delivered, bound %d", made, most.Load(), got, bound)
	if most.Load() > bound || made > bound {
		t.Fatalf("a stuck stream made %d updates (%d when it last waited), more than %d", made, most.Load(), bound)
	}
	if int64(got) > made {
		t.Fatalf("%d updates delivered, more than the %d made", got, made)
	}
	if all := routes * 9; got >= all {
		t.Fatalf("the stuck client got the whole sync (%d updates)", got)
	}
}

// TestMidSizeReadWaitsForSlot: a read past busyAfter but far short of a
// thousand units (100 peers' keys: about 500) waits for a busy-read slot
// at its first budget check; at 1,024 it walked and encoded all of it
// beside the Sets, past the write gate, while the slot was held.
func TestMidSizeReadWaitsForSlot(t *testing.T) {
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Limits: Limits{BusyReads: 1}})
	loadPeers(t, e.st, 100)
	get := &gpb.GetRequest{Path: []*gpb.Path{deepPath(1, "public-key")}, Encoding: gpb.Encoding_PROTO}
	takeSlot(t, e.srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := e.srv.Get(ctx, get); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Get of 100 peers' keys while the only slot is held: %v, want DeadlineExceeded (it waits for the slot)", err)
	}
	<-e.srv.busy
	resp, err := e.srv.Get(context.Background(), get)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetNotification()[0].GetUpdate()); n != 201 {
		t.Fatalf("%d keys, want 201", n)
	}
	if n := len(e.srv.busy); n != 0 {
		t.Fatalf("%d slots held after the Get returned, want 0", n)
	}
}

// A Get walks at most GetVisits instances, all its paths together: a
// request that repeats a path (each walk alone is bounded by the tree)
// ends with RESOURCE_EXHAUSTED naming the limit, and the same paths fewer
// times read fine.
func TestGetVisitsBounded(t *testing.T) {
	const limit = 20_000
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Limits: Limits{GetVisits: limit}})
	const peers = 1000
	loadPeers(t, e.st, peers)
	keys := deepPath(1, "public-key") // every peer's key: a walk over every peer
	req := func(times int) *gpb.GetRequest {
		r := &gpb.GetRequest{Encoding: gpb.Encoding_PROTO}
		for range times {
			r.Path = append(r.Path, keys)
		}
		return r
	}
	if _, err := e.get(req(1)); err != nil {
		t.Fatalf("one walk over %d peers: %v", peers, err)
	}
	_, err := e.get(req(200))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), fmt.Sprint(limit)) ||
		!strings.Contains(err.Error(), "instances") {
		t.Fatalf("the walk repeated 200 times: %v, want ResourceExhausted naming %d instances", err, limit)
	}
	// A single path past the limit, on a smaller one.
	small := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Limits: Limits{GetVisits: peers / 2}})
	loadPeers(t, small.st, peers)
	if _, err := small.get(req(1)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("one walk over %d peers with a %d-instance limit: %v, want ResourceExhausted", peers, peers/2, err)
	}
	if _, err := small.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=peer7]")}, Encoding: gpb.Encoding_PROTO}); err != nil {
		t.Fatalf("one peer with a %d-instance limit: %v", peers/2, err)
	}
}
