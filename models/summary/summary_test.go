package summary

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// build makes a tree from config and state updates of typed leaves.
func build(t testing.TB, config, state []func(*tree.Txn) error) *tree.Tree {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(schema)
	for i, ups := range [][]func(*tree.Txn) error{config, state} {
		tx, err := tr.Begin(i == 1)
		if err != nil {
			t.Fatal(err)
		}
		tx.OperationalEntries = i == 1
		for _, u := range ups {
			if err := u(tx); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Validate(); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	return tr
}

// Routes count by class (the YANG default, pod, for a route that names
// none) and status (unreported for a route without state); peers and
// posture read as written, sorted.
func TestSummary(t *testing.T) {
	k := kedgepath.Root().Kedge()
	r1 := k.Routes().Route("10.0.0.0/8", 254)
	r2 := k.Routes().Route("10.1.0.0/16", 254)
	r3 := k.Routes().Route("10.2.0.0/16", 100)
	peerB, peerA := k.Mesh().Peers().Peer("b"), k.Mesh().Peers().Peer("a")
	key := "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
	up := func(p interface{ Elems() []*gpb.PathElem }, v *gpb.TypedValue) func(*tree.Txn) error {
		return func(tx *tree.Txn) error { return tx.Update(p.Elems(), v) }
	}
	started := time.Unix(1700000000, 0)
	tr := build(t, []func(*tree.Txn) error{
		up(r1.Config().Class(), r1.Config().Class().Val(kedgepath.RouteClassUnderlay)),
		up(r2.Config().Device(), r2.Config().Device().Val("eth0")),
		up(r3.Config().Class(), r3.Config().Class().Val(kedgepath.RouteClassUnderlay)),
		up(peerB.Config().PublicKey(), peerB.Config().PublicKey().Val(key)),
		up(peerA.Config().PublicKey(), peerA.Config().PublicKey().Val(key)),
		up(peerA.Config().Critical(), peerA.Config().Critical().Val(true)),
	}, []func(*tree.Txn) error{
		up(r1.State().Status(), r1.State().Status().Val(kedgepath.RouteStatusWithheld)),
		up(r2.State().Status(), r2.State().Status().Val(kedgepath.RouteStatusInstalled)),
		up(peerB.State().Status(), peerB.State().Status().Val(kedgepath.PeerStatusUp)),
		up(peerB.State().LastHandshake(), peerB.State().LastHandshake().Val(uint64(started.UnixNano()))),
		up(k.Posture().State().EffectiveLevel(), k.Posture().State().EffectiveLevel().Val(3)),
		up(k.Posture().History().Transition(2).State().Sequence(), k.Posture().History().Transition(2).State().Sequence().Val(2)),
		up(k.Posture().History().Transition(1).State().Sequence(), k.Posture().History().Transition(1).State().Sequence().Val(1)),
	})
	n := Of(tr)
	if n.Routes.Total != 3 {
		t.Fatalf("routes %+v", n.Routes)
	}
	want := map[string]map[string]int{
		"underlay": {"withheld": 1, StatusUnreported: 1},
		"pod":      {"installed": 1},
	}
	for _, c := range n.Routes.ByClass {
		total := 0
		for st, v := range c.Status {
			total += v
			if v != want[c.Class][st] {
				t.Errorf("%s %s = %d, want %d", c.Class, st, v, want[c.Class][st])
			}
		}
		if total != c.Total {
			t.Errorf("%s total %d, statuses add to %d", c.Class, c.Total, total)
		}
	}
	if len(n.Mesh.Peers) != 2 || n.Mesh.Peers[0].Name != "a" || n.Mesh.Peers[0].Status != StatusUnreported || !n.Mesh.Peers[0].Critical ||
		n.Mesh.Peers[1].Status != "up" || !n.Mesh.Peers[1].LastHandshake.Equal(started) {
		t.Errorf("peers %+v", n.Mesh.Peers)
	}
	if n.Posture.Effective != 3 || len(n.Posture.History) != 2 || n.Posture.History[0].Sequence != 1 || n.Posture.Last != nil {
		t.Errorf("posture %+v", n.Posture)
	}
	if len(n.Sessions) != 0 || n.Sessions == nil || len(n.Underlay.Devices) != 0 || n.Underlay.Devices == nil {
		t.Errorf("empty lists must be empty, not nil: sessions %v devices %v", n.Sessions, n.Underlay.Devices)
	}
}

// The cluster's level reads from the cluster engine's mirror: absent
// without one; the level and object from config (the object from state
// when the cluster sets no level), the API link from state.
func TestClusterPosture(t *testing.T) {
	c := kedgepath.Root().Kedge().Posture().Cluster()
	if p := Of(build(t, nil, nil)).Posture; p.Cluster != nil {
		t.Errorf("no cluster engine: cluster %+v", p.Cluster)
	}
	heard := time.Unix(1700000000, 0)
	tr := build(t, []func(*tree.Txn) error{
		func(tx *tree.Txn) error { return tx.Update(c.Config().Level().Elems(), c.Config().Level().Val(2)) },
		func(tx *tree.Txn) error {
			return tx.Update(c.Config().Object().Elems(), c.Config().Object().Val("prod"))
		},
	}, []func(*tree.Txn) error{
		func(tx *tree.Txn) error {
			return tx.Update(c.State().Connected().Elems(), c.State().Connected().Val(true))
		},
		func(tx *tree.Txn) error {
			return tx.Update(c.State().LastSync().Elems(), c.State().LastSync().Val(uint64(heard.UnixNano())))
		},
	})
	got := Of(tr).Posture.Cluster
	if got == nil || got.Level != 2 || got.Object != "prod" || !got.Connected || !got.LastSync.Equal(heard) {
		t.Errorf("cluster at 2: %+v", got)
	}
	tr = build(t, nil, []func(*tree.Txn) error{
		func(tx *tree.Txn) error {
			return tx.Update(c.State().Object().Elems(), c.State().Object().Val("cluster"))
		},
		func(tx *tree.Txn) error {
			return tx.Update(c.State().Connected().Elems(), c.State().Connected().Val(false))
		},
	})
	got = Of(tr).Posture.Cluster
	if got == nil || got.Level != 0 || got.Object != "cluster" || got.Connected || !got.LastSync.IsZero() {
		t.Errorf("cluster setting no level, API down: %+v", got)
	}
}

// BenchmarkRoutes100k is what the status follower pays to recount the
// routes after a commit that touched them, at 100,000 routes.
func BenchmarkRoutes100k(b *testing.B) {
	k := kedgepath.Root().Kedge()
	var cfg, st []func(*tree.Txn) error
	for i := range 100_000 {
		r := k.Routes().Route(fmt.Sprintf("10.%d.%d.%d/32", i>>16, i>>8&255, i&255), 254)
		class := kedgepath.RouteClassValues()[i%6]
		cfg = append(cfg, func(tx *tree.Txn) error { return tx.Update(r.Config().Class().Elems(), r.Config().Class().Val(class)) })
		st = append(st, func(tx *tree.Txn) error {
			return tx.Update(r.State().Status().Elems(), r.State().Status().Val(kedgepath.RouteStatusInstalled))
		})
	}
	tr := build(b, cfg, st)
	n := &Node{}
	runtime.GC() // the build's garbage is not the recount's
	b.ResetTimer()
	for range b.N {
		Fill(n, tr, SectionRoutes)
	}
	b.StopTimer()
	if n.Routes.Total != 100_000 {
		b.Fatalf("counted %d routes", n.Routes.Total)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/recount")
}
