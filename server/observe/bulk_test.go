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

// A section a bulk commit touched is not recounted for bulkHold, however
// many commits, bulk or not, touch it meanwhile (the other sections
// follow at once, Processed stays behind); then it is, loads or not, and
// its counts are the full recount's. The clock is the test's and moves
// only when the test moves it.
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
	// drainWaits returns the last timer the follower asked for. It sets
	// its timer after it publishes the summary sync waits for, so the
	// first is waited for.
	drainWaits := func() (last time.Duration) {
		t.Helper()
		select {
		case last = <-waits:
		case <-time.After(10 * time.Second):
			t.Fatal("the follower set no timer for the section held back")
		}
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
	if w := drainWaits(); w <= 0 || w > bulkHold {
		t.Errorf("bulk load held back for %v, want at most %v", w, bulkHold)
	}
	// More commits of routes, bulk or not, do not hold it longer.
	const step = bulkHold / 4
	for i := 1; i < 4; i++ {
		clock.Add(int64(step))
		load(1 + 3*(i%2))
		fire <- time.Time{} // a timer set before this commit fires: too early
		if n := sync(); n.Routes.Total != 0 {
			t.Fatalf("%v into a bulk load: recounted %d routes", time.Duration(i)*step, n.Routes.Total)
		}
	}
	// At bulkHold the timer recounts them, though loads go on.
	clock.Add(int64(step))
	fire <- time.Time{}
	for n.Routes.Total != routes {
		n, changed = next(t, f, changed)
	}
	// A small commit is counted at once; the next bulk one is held back.
	clock.Add(int64(time.Minute)) // past holdFactor
	load(1)
	if n := sync(); n.Routes.Total != routes {
		t.Fatalf("a small commit after a recount: routes %d of %d", n.Routes.Total, routes)
	}
	bulkLoad()
	if n := sync(); n.Routes.Total == routes {
		t.Fatal("a bulk load after a recount recounted at once")
	}
	clock.Add(int64(bulkHold))
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
