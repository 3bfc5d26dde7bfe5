package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// bulkRoutesJSON is the value of one gNMI Set of n routes at
// /kedge/routes, shaped as the integration benchmark's (tests/
// BenchmarkRoutes100k): keys, then the config with its key mirrors and
// a device every route shares.
func bulkRoutesJSON(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"route":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := `"10.` + itoa(i/65536%256) + "." + itoa(i/256%256) + "." + itoa(i%256) + `/32"`
		b.WriteString(`{"prefix":` + p + `,"table":254,"config":{"prefix":` + p + `,"table":254,"device":"rtA"}}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkBulkSetJSON commits one update of 100,000 routes given as one
// JSON_IETF value at /kedge/routes, as a bulk gNMI Set does: decode,
// validate, log durably, publish. B/op and allocs/op count the commit
// alone (the JSON is built before the timer).
func BenchmarkBulkSetJSON(b *testing.B) {
	const n = 100000
	val := js(string(bulkRoutesJSON(n)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := Open(b.TempDir(), kedgeSchema(b), Options{})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		start := time.Now()
		b.StartTimer()
		c, err := s.Commit(context.Background(), []Op{{Kind: OpUpdate, Path: path(b, "/kedge/routes"), Val: val}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		took, cpu := time.Since(start), cpuTime()-cpu0
		if len(c.Changes) != 5*n {
			b.Fatalf("%d changes, want %d", len(c.Changes), 5*n)
		}
		b.ReportMetric(took.Seconds(), "commit-s")
		b.ReportMetric(cpu.Seconds(), "commit-cpu-s")
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkEncodeBulkCommit encodes the log record of a commit of
// 100,000 routes (500,000 changes), in one part and in one a core, side
// by side in one run.
func BenchmarkEncodeBulkCommit(b *testing.B) {
	s, err := Open(b.TempDir(), kedgeSchema(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := mustCommit(b, s, Op{Kind: OpUpdate, Path: path(b, "/kedge/routes"), Val: js(string(bulkRoutesJSON(100000)))})
	for _, parts := range []int{1, encodeParts(len(c.Changes))} {
		b.Run("parts="+itoa(parts), func(b *testing.B) {
			for range b.N {
				e := newEncoder(commitHead, 7, 1, len(c.Changes)*changeBytes)
				e.addAllSplit(c.Changes, parts)
				b.SetBytes(int64(len(e.bytes())))
			}
		})
	}
}
