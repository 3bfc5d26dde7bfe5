package segment

import (
	"context"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkUpdateToObservation measures writer update -> poller observation
// latency over 100,000 updates in one iteration (so -benchtime 1x is
// meaningful). The poller busy-polls the sequence on its own locked OS
// thread, as a VPP worker would; writer and poller hand off per update so
// they never overrun each other. The clock starts before Writer.Set (so Set's
// own cost counts) and stops after the poller holds a consistent snapshot.
func BenchmarkUpdateToObservation(b *testing.B) {
	const updates = 100_000
	path := filepath.Join(b.TempDir(), "kedge-governance")
	w, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r, err := OpenReader(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var lat []time.Duration
	var setCost time.Duration
	b.ResetTimer()
	for range b.N {
		wrote := make([]time.Duration, updates)
		seen := make([]time.Duration, updates)
		var acked atomic.Int64
		pollErr := make(chan error, 1)
		base := time.Now()
		last := r.Sequence() // before the first Set, or the poller could miss it
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for i := range updates {
				st, err := r.SpinUntilChanged(ctx, last)
				if err != nil {
					pollErr <- err
					return
				}
				seen[i] = time.Since(base)
				last = st.Sequence
				acked.Store(int64(i + 1))
			}
			pollErr <- nil
		}()
		for i := range updates {
			lvl := uint8(1 + i%5)
			t0 := time.Since(base)
			if err := w.Set(ctx, shm.Config{Level: lvl, Flags: uint32(i)}); err != nil {
				b.Fatal(err)
			}
			t1 := time.Since(base)
			wrote[i], setCost = t0, setCost+t1-t0
			for acked.Load() != int64(i+1) {
				runtime.Gosched()
			}
		}
		if err := <-pollErr; err != nil {
			b.Fatal(err)
		}
		for i := range updates {
			lat = append(lat, seen[i]-wrote[i])
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
	b.ReportMetric(pct(0.999), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	b.ReportMetric(float64(setCost.Nanoseconds())/float64(len(lat)), "set-ns")
	b.ReportMetric(pct(0.99)/10_000, "p99/target")
}
