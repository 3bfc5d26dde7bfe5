package observe

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// BenchmarkRouteCommitsFollowed100k measures what the status follower
// costs writers at 100,000 routes: state commits of one route's status
// (as the routes reconciler makes them), one a millisecond for 2 s, with no follower,
// with the follower recounting after every burst (hold 0), and with the
// follower holding back the costly routes recount (holdFactor). The
// recount holds the store's read lock, which blocks commits. Reported:
// each variant's p99 and slowest commit, the time spent in commits
// slower than 1 ms (stalled, of the 2 s), and the time the follower held
// the read lock after its first summary (lock-held, the quantity the
// hold-back bounds).
func BenchmarkRouteCommitsFollowed100k(b *testing.B) {
	st := yangtest.Store(b)
	ctx := context.Background()
	k := kedgepath.Root().Kedge()
	const routes = 100_000
	ops := make([]store.Op, 0, routes)
	for i := range routes {
		ops = append(ops, store.Update(k.Routes().Route(prefix(i), 254).Config().Device(), "eth0"))
	}
	if _, err := st.Commit(ctx, ops); err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name   string
		follow bool
		hold   time.Duration
	}{{"unfollowed", false, 0}, {"every-burst", true, 0}, {"held-back", true, holdFactor}}
	// A commit every pace, as a reconciler working through a bulk load
	// makes them, for span.
	const span, pace = 2 * time.Second, time.Millisecond
	var held time.Duration // the follower's time in the store's read lock
	for b.Loop() {
		for vi, v := range variants {
			var stop func()
			if v.follow {
				f := NewFollower(timed{st, &held}, FollowerOptions{})
				f.hold = v.hold
				stop = runFollower(ctx, b, f)
			}
			held = 0
			var lat []time.Duration
			tick := time.NewTicker(pace)
			t0 := time.Now()
			for i := 0; time.Since(t0) < span; i++ {
				<-tick.C
				r := k.Routes().Route(prefix(i*331%routes), 254).State()
				// Each variant flips what the one before wrote: a commit
				// that changes nothing wakes no follower.
				status := kedgepath.RouteStatusInstalled
				if (i+vi)%2 == 1 {
					status = kedgepath.RouteStatusPending
				}
				c0 := time.Now()
				if _, err := st.CommitState(ctx, []store.Op{store.Update(r.Status(), status)}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(c0))
			}
			tick.Stop()
			if stop != nil {
				stop()
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), v.name+"-p99-µs")
			var stalled time.Duration
			for _, l := range lat {
				if l > time.Millisecond {
					stalled += l
				}
			}
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), v.name+"-max-ms")
			b.ReportMetric(float64(stalled.Milliseconds()), v.name+"-stalled-ms")
			if v.follow {
				b.ReportMetric(float64(held.Milliseconds()), v.name+"-lock-held-ms")
			}
		}
	}
}

func prefix(i int) string { return fmt.Sprintf("10.%d.%d.%d/32", i>>16, i>>8&255, i&255) }

// timed is a Source that adds the time its reads hold the store's read
// lock to *held (the follower's goroutine is its only caller while the
// writer runs; the writer reads it after the follower stopped).
type timed struct {
	*store.Store
	held *time.Duration
}

func (t timed) ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error) {
	return t.Store.ReadWatch(func(tr *tree.Tree, seq uint64) error {
		t0 := time.Now()
		defer func() { *t.held += time.Since(t0) }()
		return fn(tr, seq)
	})
}

func (t timed) ReadAt(fn func(t *tree.Tree, seq uint64) error) error {
	return t.Store.ReadAt(func(tr *tree.Tree, seq uint64) error {
		t0 := time.Now()
		defer func() { *t.held += time.Since(t0) }()
		return fn(tr, seq)
	})
}

// BenchmarkBulkLoadFollowed100k measures what the status follower takes
// from a bulk load as BenchmarkRoutes100k (tests) makes it: one commit of
// 100,000 routes, then the routes reconciler's state commits, ten of
// 10,000 routes 50 ms apart. Reported, for the follower without the
// bulk hold-back (as at a737688) and with it: the time it spent
// recounting (in ReadAt) from the bulk commit until the last state
// commit, when the backends want both cores.
func BenchmarkBulkLoadFollowed100k(b *testing.B) {
	ctx := context.Background()
	k := kedgepath.Root().Kedge()
	const routes, batches = 100_000, 10
	ops := make([]store.Op, 0, routes)
	for i := range routes {
		ops = append(ops, store.Update(k.Routes().Route(prefix(i), 254).Config().Device(), "eth0"))
	}
	for b.Loop() {
		for _, v := range []struct {
			name string
			bulk int
		}{{"no-hold", 1 << 62}, {"bulk-hold", bulkChanges}} {
			st := yangtest.Store(b)
			var held time.Duration
			f := NewFollower(timed{st, &held}, FollowerOptions{})
			f.bulk = v.bulk
			stop := runFollower(ctx, b, f)
			held = 0
			if _, err := st.Commit(ctx, ops); err != nil {
				b.Fatal(err)
			}
			for j := range batches {
				time.Sleep(50 * time.Millisecond)
				var sops []store.Op
				for i := j * routes / batches; i < (j+1)*routes/batches; i++ {
					sops = append(sops, store.Update(k.Routes().Route(prefix(i), 254).State().Status(), kedgepath.RouteStatusInstalled))
				}
				if _, err := st.CommitState(ctx, sops); err != nil {
					b.Fatal(err)
				}
			}
			stop()
			b.ReportMetric(float64(held.Milliseconds()), v.name+"-recount-ms")
		}
	}
}

// runFollower runs f until the function it returns is called, once f has
// published its first summary.
func runFollower(ctx context.Context, b *testing.B, f *Follower) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	_, changed := f.Current()
	go func() {
		defer close(done)
		if err := f.Run(ctx); err != nil {
			b.Error(err)
		}
	}()
	<-changed
	return func() { cancel(); <-done }
}
