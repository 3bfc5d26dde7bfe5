package target

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/openconfig/gnmi/cache"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	ocsubscribe "github.com/openconfig/gnmi/subscribe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// The Subscribe benchmark runs Kedge and a reference server built from
// openconfig/gnmi's subscribe and cache packages side by side on the same
// workload: 100 STREAM ON_CHANGE subscribers, then 100,000 leaf updates
// injected as 1,000 batches of 100 (Kedge: 1,000 durable commits through
// the store; reference: 1,000 notifications into its cache). It reports
// delivered updates per second for each and their ratio, then the
// latency from a single-leaf write to a subscriber's receipt.
const (
	benchSubs    = 100
	benchLeaves  = 100000
	benchBatch   = 100
	benchSamples = 300
)

func routeElems(i int) []*gpb.PathElem {
	return []*gpb.PathElem{
		{Name: "kedge"}, {Name: "routes"},
		{Name: "route", Key: map[string]string{"prefix": fmt.Sprintf("10.%d.%d.%d/32", i/65536, i/256%256, i%256), "table": "254"}},
		{Name: "config"}, {Name: "metric"},
	}
}

// side is one server under test: how to start subscribers and inject.
type side struct {
	name   string
	addr   string
	target string // prefix target the subscribers must name
	inject func(batch int, value uint64) error
	one    func(value uint64) error // a single-leaf write
	stop   func()
}

func kedgeSide(b *testing.B) *side {
	schema, err := yang.Schema()
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(b.TempDir(), schema, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(st, Options{Auth: allow{}})
	if err != nil {
		b.Fatal(err)
	}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer(srv.GRPCServerOption())
	srv.Register(g)
	go g.Serve(lis)
	// Pre-create the routes so the measured updates are value changes.
	var ops []store.Op
	for i := 0; i < benchLeaves; i++ {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: routeElems(i), Val: tree.Typed(tree.Uint(0))})
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		b.Fatal(err)
	}
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cl := gpb.NewGNMIClient(conn)
	return &side{
		name: "kedge", addr: lis.Addr().String(),
		inject: func(batch int, v uint64) error {
			ops := make([]store.Op, 0, benchBatch)
			for i := batch * benchBatch; i < (batch+1)*benchBatch; i++ {
				ops = append(ops, store.Op{Kind: store.OpUpdate, Path: routeElems(i), Val: tree.Typed(tree.Uint(v))})
			}
			_, err := st.Commit(context.Background(), ops)
			return err
		},
		one: func(v uint64) error {
			_, err := cl.Set(context.Background(), &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: routeElems(0)}, Val: tree.Typed(tree.Uint(v))}}})
			return err
		},
		stop: func() { conn.Close(); g.Stop(); srv.Close(); st.Close() },
	}
}

func referenceSide(b *testing.B) *side {
	c := cache.New([]string{"dev"})
	ss, err := ocsubscribe.NewServer(c)
	if err != nil {
		b.Fatal(err)
	}
	c.SetClient(ss.Update)
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer()
	gpb.RegisterGNMIServer(g, ss)
	go g.Serve(lis)
	ts := time.Now().UnixNano()
	next := func() int64 { ts++; return ts }
	n := &gpb.Notification{Timestamp: next(), Prefix: &gpb.Path{Target: "dev"}}
	for i := 0; i < benchLeaves; i++ {
		n.Update = append(n.Update, &gpb.Update{Path: &gpb.Path{Elem: routeElems(i)}, Val: tree.Typed(tree.Uint(0))})
	}
	if err := c.GnmiUpdate(n); err != nil {
		b.Fatal(err)
	}
	c.Sync("dev")
	return &side{
		name: "reference", addr: lis.Addr().String(), target: "dev",
		inject: func(batch int, v uint64) error {
			n := &gpb.Notification{Timestamp: next(), Prefix: &gpb.Path{Target: "dev"}}
			for i := batch * benchBatch; i < (batch+1)*benchBatch; i++ {
				n.Update = append(n.Update, &gpb.Update{Path: &gpb.Path{Elem: routeElems(i)}, Val: tree.Typed(tree.Uint(v))})
			}
			return c.GnmiUpdate(n)
		},
		one: func(v uint64) error {
			return c.GnmiUpdate(&gpb.Notification{Timestamp: next(), Prefix: &gpb.Path{Target: "dev"},
				Update: []*gpb.Update{{Path: &gpb.Path{Elem: routeElems(0)}, Val: tree.Typed(tree.Uint(v))}}})
		},
		stop: func() { g.Stop() },
	}
}

// subscriber opens a STREAM ON_CHANGE updates_only subscription and calls
// onUpdate for every update received, after the sync response.
func subscriber(b *testing.B, ctx context.Context, s *side, path []*gpb.PathElem, onUpdate func(*gpb.Update)) (ready <-chan struct{}) {
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		b.Fatal(err)
	}
	sc, err := gpb.NewGNMIClient(conn).Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	err = sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Prefix: &gpb.Path{Target: s.target}, Mode: gpb.SubscriptionList_STREAM, UpdatesOnly: true, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: path}, Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	r := make(chan struct{})
	go func() {
		defer conn.Close()
		for {
			resp, err := sc.Recv()
			if err != nil {
				return
			}
			if resp.GetSyncResponse() {
				close(r)
				continue
			}
			for _, u := range resp.GetUpdate().GetUpdate() {
				onUpdate(u)
			}
		}
	}()
	return r
}

func throughput(b *testing.B, s *side) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	routes := []*gpb.PathElem{{Name: "kedge"}, {Name: "routes"}}
	for i := 0; i < benchSubs; i++ {
		wg.Add(1)
		var n int
		var once sync.Once
		ready := subscriber(b, ctx, s, routes, func(*gpb.Update) {
			if n++; n == benchLeaves {
				once.Do(wg.Done)
			}
		})
		<-ready
	}
	start := time.Now()
	for batch := 0; batch < benchLeaves/benchBatch; batch++ {
		if err := s.inject(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("%s: subscribers did not receive every update", s.name)
	}
	return float64(benchSubs*benchLeaves) / time.Since(start).Seconds()
}

func latency(b *testing.B, s *side) (p50, p99 time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 16)
	<-subscriber(b, ctx, s, routeElems(0), func(u *gpb.Update) { got <- u.GetVal().GetUintVal() })
	var lat []time.Duration
	for i := 0; i < benchSamples; i++ {
		v := uint64(1000 + i)
		start := time.Now()
		if err := s.one(v); err != nil {
			b.Fatal(err)
		}
		for x := range got {
			if x == v {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// BenchmarkSubscribeVsReference compares Kedge with openconfig/gnmi's
// subscribe+cache server in one run.
func BenchmarkSubscribeVsReference(b *testing.B) {
	for range b.N {
		k := kedgeSide(b)
		kRate := throughput(b, k)
		k50, k99 := latency(b, k)
		k.stop()
		r := referenceSide(b)
		rRate := throughput(b, r)
		r50, r99 := latency(b, r)
		r.stop()
		b.ReportMetric(kRate, "kedge-upd/s")
		b.ReportMetric(rRate, "ref-upd/s")
		b.ReportMetric(kRate/rRate, "ratio")
		b.ReportMetric(float64(k50.Microseconds()), "kedge-p50-µs")
		b.ReportMetric(float64(k99.Microseconds()), "kedge-p99-µs")
		b.ReportMetric(float64(r50.Microseconds()), "ref-p50-µs")
		b.ReportMetric(float64(r99.Microseconds()), "ref-p99-µs")
	}
}
