package posture

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/dataplane/shm/shmtest"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgmeshtest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// bpfRecorder is a recording BPFMapSetter (the bpfmap helper's fake had not
// landed when this was written).
type bpfRecorder struct{ last bpfmap.Config }

func (r *bpfRecorder) Set(_ context.Context, cfg bpfmap.Config) error { r.last = cfg; return nil }

var routeClasses = []string{"underlay", "underlay", "underlay", "underlay", "overlay", "overlay", "overlay", "pod", "pod", "management", "monitoring", "incident"}
var tiers = []string{"master", "site-owner", "operator", "observer"}

// fillTree commits peers and routes in one config transaction.
func fillTree(tb testing.TB, st *store.Store, peers, routes int) {
	tb.Helper()
	str := func(v string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}} }
	num := func(v uint64) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}} }
	var ops []store.Op
	up := func(p string, v *gpb.TypedValue) {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: mustPath(tb, p), Val: v})
	}
	for i := range peers {
		name := "peer" + strconv.Itoa(i)
		base := "/kedge/mesh/peers/peer[name=" + name + "]/config/"
		var k [32]byte
		_, _ = rand.Read(k[:])
		up(base+"name", str(name))
		up(base+"public-key", str(base64.StdEncoding.EncodeToString(k[:])))
		up(base+"endpoint", str(fmt.Sprintf("192.168.%d.%d:51820", i/250, 1+i%250)))
		up(base+"allowed-ips", &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{
			JsonIetfVal: fmt.Appendf(nil, `["10.200.%d.%d/32"]`, i/250, 1+i%250)}})
		up(base+"critical", &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: i%10 == 0}})
	}
	for i := range routes {
		prefix := fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256)
		base := "/kedge/routes/route[prefix=" + prefix + "][table=254]/config/"
		up(base+"prefix", str(prefix))
		up(base+"table", num(254))
		up(base+"device", str("eth0"))
		up(base+"class", str(routeClasses[i%len(routeClasses)]))
		up(base+"tier", str(tiers[i%len(tiers)]))
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkTransition measures 5→1 and 1→5 with 1,000 peers and 10,000
// routes in the tree: every step is real engine code (plan, durable
// in-flight record, snapshot, forensic snapshot, intent from the tree,
// state and history commits) over the backends' recording fakes and a real
// store. One iteration does the whole workload; the metrics are per
// direction.
func BenchmarkTransition(b *testing.B) {
	const peers, routes = 1000, 10000
	for range b.N {
		st := openStoreAt(b, b.TempDir())
		fillTree(b, st, peers, routes)
		key, _ := wgmesh.GenerateKey()
		base := wgmesh.Config{Interface: "kedge0", PrivateKey: key}
		shmW := &shmtest.Writer{}
		bpf := &bpfRecorder{}
		meshFake, routeFake := wgmeshtest.New(), routetest.New()
		steps := []Step{
			ShmStep(shmW),
			BPFMapStep(bpf, bpfmap.Config{}),
			ForensicStep(st, nil),
			IntentStep("mesh", StageMesh, st, func(t *tree.Tree, a accord.Accord) (wgmesh.Config, error) {
				return intent.Mesh(t, a, base), nil
			}, meshFake),
			IntentStep("routes", StageRoutes, st, intent.RouteConfig, Setter[route.Config](routeFake)),
		}
		reps := make(chan Report, 4)
		e, err := New(st, Options{Steps: steps, OnReport: func(r Report) { reps <- r }})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		<-reps // start-up convergence at 5

		measure := func(level uint8) (Report, time.Duration) {
			t0 := time.Now()
			setLevel(b, st, level)
			r := <-reps
			if r.Result != ResultOK || r.To != level {
				b.Fatalf("transition to %d: %s %+v", level, r.Result, r.Steps)
			}
			return r, time.Since(t0)
		}
		down, downE2E := measure(1)
		if n := len(routeFake.Routes()); n == 0 || n == routes {
			b.Fatalf("at level 1 the route fake holds %d routes", n)
		}
		if last, _ := meshFake.Last(); len(last.Peers) != 0 {
			b.Fatalf("at level 1 the mesh fake holds %d peers", len(last.Peers))
		}
		up, upE2E := measure(5)
		// Every route, plus one overlay route to each peer's allowed IP.
		if n := len(routeFake.Routes()); n != routes+peers {
			b.Fatalf("after 1→5 the route fake holds %d routes, want %d", n, routes+peers)
		}
		if last, _ := meshFake.Last(); len(last.Peers) != peers {
			b.Fatalf("after 1→5 the mesh fake holds %d peers, want %d", len(last.Peers), peers)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st.Close()

		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		shmDown, _ := down.elapsed("shm")
		shmUp, _ := up.elapsed("shm")
		b.ReportMetric(ms(down.Duration), "ms-5to1-plan+apply")
		b.ReportMetric(ms(up.Duration), "ms-1to5-plan+apply")
		b.ReportMetric(ms(downE2E), "ms-5to1-set-to-done")
		b.ReportMetric(ms(upE2E), "ms-1to5-set-to-done")
		b.ReportMetric(float64(shmDown)/1e3, "us-5to1-shm-done")
		b.ReportMetric(float64(shmUp)/1e3, "us-1to5-shm-done")
		for _, r := range []Report{down, up} {
			for _, s := range r.Steps {
				b.ReportMetric(ms(s.Duration), fmt.Sprintf("ms-%dto%d-%s", r.From, r.To, s.Name))
			}
		}
	}
}
