package hostlock

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkTakeRelease is what the locks add to a daemon's start and
// stop: one take and release of each kind, side by side in one run, 200
// rounds each, p50 and p99 in microseconds (make bench runs it once).
func BenchmarkTakeRelease(b *testing.B) {
	dir := b.TempDir()
	name := fmt.Sprintf("bench/%d-%d", os.Getpid(), rand.IntN(1<<30))
	me := Self(dir)
	kinds := []struct {
		name string
		take func() (*Lock, error)
	}{
		{"file", func() (*Lock, error) { return File(filepath.Join(dir, "x.lock"), Resource{Name: "x"}, me) }},
		{"dir", func() (*Lock, error) { return Dir(dir, Resource{Name: "x"}) }},
		{"abstract", func() (*Lock, error) { return Abstract("", name, Resource{Name: "x"}, me) }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				var took []time.Duration
				for range 200 {
					start := time.Now()
					l, err := k.take()
					if err != nil {
						b.Fatal(err)
					}
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
