package observe

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// A section a bulk commit touched is not recounted while commits, bulk
// or not, keep touching it (the other sections follow at once, Processed stays
// behind); it is recounted once they pause for bulkSettle, or bulkTrail
// after the first of them however many follow; settled, its counts are
// the full recount's. The clock is the test's and moves only when the
// test moves it.
func TestFollowerDefersBulkLoads(t *testing.T) {
	st := yangtest.Store(t)
	var clock atomic.Int64 // nanoseconds
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	fire := make(chan time.Time, 1)
	waits := make(chan time.Duration, 64)
	f := NewFollower(st, FollowerOptions{Now: now, After: func(d time.Duration) <-chan time.Time {
		select {
		case waits <- d:
		default:
		}
		return fire
	}})
	f.bulk = 8 // a commit of 8 changes is a bulk load here
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, changed := f.Current()
	go f.Run(ctx)
	n, changed := next(t, f, changed)

	k := kedgepath.Root().Kedge()
	routes := 0
	load := func(size int) {
		t.Helper()
		var ops []store.Op
		for range size {
			r := k.Routes().Route(fmt.Sprintf("10.0.%d.0/24", routes), 254).Config()
			ops = append(ops, store.Update(r.Device(), "eth0"))
			routes++
		}
		if c, err := st.Commit(ctx, ops); err != nil || (len(c.Changes) >= f.bulk) != (size > 1) {
			t.Fatalf("commit of %d routes: %v (%d changes)", size, err, len(c.Changes))
		}
	}
	bulkLoad := func() { t.Helper(); load(4) }
	level := uint8(0)
	// sync commits a posture level and waits for its summary: the
	// follower has read every commit before it.
	sync := func() *summary.Node {
		t.Helper()
		level = level%5 + 1
		if _, err := st.CommitState(ctx, []store.Op{store.Update(k.Posture().State().EffectiveLevel(), level)}); err != nil {
			t.Fatal(err)
		}
		for n.Posture.Effective != level {
			n, changed = next(t, f, changed)
		}
		return n
	}
	drainWaits := func() (last time.Duration) {
		for {
			select {
			case last = <-waits:
			default:
				return last
			}
		}
	}

	bulkLoad()
	if n := sync(); n.Routes.Total != 0 || f.Processed() >= st.Seq() {
		t.Fatalf("a bulk load recounted at once: routes %d, processed %d of %d", n.Routes.Total, f.Processed(), st.Seq())
	}
	if w := drainWaits(); w <= 0 || w > bulkSettle {
		t.Errorf("bulk load held back for %v, want at most %v", w, bulkSettle)
	}
	// More commits of routes, even of one route each, within bulkSettle
	// of each other keep it held back, to bulkTrail after the first.
	for step := time.Duration(0); step+bulkSettle/2 < bulkTrail; step += bulkSettle / 2 {
		clock.Add(int64(bulkSettle / 2))
		load(1)
		fire <- time.Time{} // a timer set before this load fires: too early
		if n := sync(); n.Routes.Total != 0 {
			t.Fatalf("%v into a bulk load: recounted %d routes", step+bulkSettle/2, n.Routes.Total)
		}
	}
	// Past bulkTrail the next one is recounted, loads or not.
	clock.Add(int64(bulkSettle / 2))
	bulkLoad()
	if n := sync(); n.Routes.Total != routes || f.Processed() != st.Seq() {
		t.Fatalf("past bulkTrail: routes %d of %d, processed %d of %d", n.Routes.Total, routes, f.Processed(), st.Seq())
	}
	// A small commit is counted at once; a pause of bulkSettle recounts
	// the next load.
	clock.Add(int64(time.Minute)) // past holdFactor
	load(1)
	if n := sync(); n.Routes.Total != routes {
		t.Fatalf("a small commit after a recount: routes %d of %d", n.Routes.Total, routes)
	}
	drainWaits()
	bulkLoad()
	if n := sync(); n.Routes.Total == routes {
		t.Fatal("a bulk load after a recount recounted at once")
	}
	clock.Add(int64(bulkSettle))
	fire <- time.Time{}
	for n.Routes.Total != routes {
		n, changed = next(t, f, changed)
	}
	var full *summary.Node
	if err := st.Read(func(tr *tree.Tree) error { full = summary.Of(tr); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(n.Routes, full.Routes) || f.Processed() != st.Seq() {
		t.Errorf("settled: routes %+v, the full recount %+v; processed %d of %d", n.Routes, full.Routes, f.Processed(), st.Seq())
	}
}
