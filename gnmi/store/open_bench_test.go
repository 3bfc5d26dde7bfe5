package store

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkOpen measures restart: opening a store of 10,000 routes whose
// log holds them and 2,000 single-leaf commits after them (no snapshot),
// 20 times. Each open verifies and replays the log, reading the
// preallocated rest of the newest segment to make sure no record follows
// its end, and starts a new segment.
func BenchmarkOpen(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		s, err := Open(dir, kedgeSchema(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		mustCommit(b, s, routeOps(b, 10000)...)
		for i := range 2000 {
			if _, err := s.Commit(context.Background(), []Op{upd(b, kroute(i%10000)+"/config/owner", str(strconv.Itoa(i)))}); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		schema := kedgeSchema(b)
		var lat []time.Duration
		for range 20 {
			start := time.Now()
			s, err := Open(dir, schema, Options{})
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			s.Close()
		}
		p50, _ := percentiles(lat)
		b.ReportMetric(float64(p50.Milliseconds()), "open-p50-ms")
	}
}
