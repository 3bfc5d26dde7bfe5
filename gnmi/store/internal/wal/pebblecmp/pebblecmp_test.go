package pebblecmp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
)

const (
	// singleLeaf is the payload of a single-leaf commit's log record in
	// gnmi/store (119 bytes framed, 16 of them framing).
	singleLeaf = 103
	// bulk is the payload of the record of one commit of 100,000 routes
	// (gnmi/store's Benchmark100kRoutes).
	bulk = 15_499_970
	// segment is what both logs preallocate, as gnmi/store does.
	segment = 64 << 20
)

// kedgeLog is gnmi/store's log in dir.
func kedgeLog(t testing.TB, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Create(dir, 1, wal.Link{}, wal.Options{SegmentSize: segment})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fdatasyncFile makes pebble's LogWriter sync as Kedge's log does.
type fdatasyncFile struct{ *os.File }

func (f fdatasyncFile) Sync() error { return unix.Fdatasync(int(f.Fd())) }

// pebbleLog is pebble's WAL writer (WAL sync chunks, as pebble's own WAL
// uses them) over a file preallocated like Kedge's segments.
type pebbleLog struct {
	f   *os.File
	lw  *record.LogWriter
	sem chan struct{}
}

func newPebbleLog(t testing.TB, dir string) *pebbleLog {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "pebble.log"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, segment); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	p := &pebbleLog{f: f, sem: make(chan struct{}, 4096)}
	p.lw = record.NewLogWriter(fdatasyncFile{f}, 1, record.LogWriterConfig{
		// The fsync histogram is what makes the writer record synced
		// offsets in the chunks: without it every chunk says 0 and the
		// reader cannot tell corruption from a torn tail.
		WALFsyncLatency:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fsync"}),
		QueueSemChan:        p.sem,
		WriteWALSyncOffsets: func() bool { return true },
	})
	return p
}

// append writes one record and waits until it is synced, as a commit
// must before it is acknowledged.
func (p *pebbleLog) append(payload []byte) error {
	p.sem <- struct{}{}
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	if _, err := p.lw.SyncRecord(payload, &wg, &err); err != nil {
		return err
	}
	wg.Wait()
	return err
}

func (p *pebbleLog) close() {
	p.lw.Close()
	p.f.Close()
}

func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func pcts(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// BenchmarkSingleLeafAppend appends 2,000 single-leaf commit records to
// each log, alternating, one durable append at a time (a commit waits
// for its sync before the next): the part of a durable commit that the
// choice of log changes.
func BenchmarkSingleLeafAppend(b *testing.B) {
	for range b.N {
		ours, theirs := kedgeLog(b, b.TempDir()), newPebbleLog(b, b.TempDir())
		const n = 2000
		var lo, lp []time.Duration
		for i := range n {
			p := payload(singleLeaf, uint64(i))
			start := time.Now()
			if err := ours.Append(p); err != nil {
				b.Fatal(err)
			}
			lo = append(lo, time.Since(start))
			start = time.Now()
			if err := theirs.append(p); err != nil {
				b.Fatal(err)
			}
			lp = append(lp, time.Since(start))
		}
		o50, o99 := pcts(lo)
		p50, p99 := pcts(lp)
		b.ReportMetric(float64(o50.Microseconds()), "kedge-p50-µs")
		b.ReportMetric(float64(o99.Microseconds()), "kedge-p99-µs")
		b.ReportMetric(float64(p50.Microseconds()), "pebble-p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "pebble-p99-µs")
		b.ReportMetric(float64(p50)/float64(o50), "pebble/kedge-p50")
		b.ReportMetric(float64(p99)/float64(o99), "pebble/kedge-p99")
		ours.Close()
		theirs.close()
	}
}

// BenchmarkBulkAppend appends the record of a 100,000-route commit
// (15.5 MB) to a fresh log of each kind, alternating, five times.
func BenchmarkBulkAppend(b *testing.B) {
	for range b.N {
		p := payload(bulk, 7)
		var lo, lp []time.Duration
		for range 5 {
			ours, theirs := kedgeLog(b, b.TempDir()), newPebbleLog(b, b.TempDir())
			start := time.Now()
			if err := ours.Append(p); err != nil {
				b.Fatal(err)
			}
			lo = append(lo, time.Since(start))
			start = time.Now()
			if err := theirs.append(p); err != nil {
				b.Fatal(err)
			}
			lp = append(lp, time.Since(start))
			ours.Close()
			theirs.close()
		}
		o50, _ := pcts(lo)
		p50, _ := pcts(lp)
		b.ReportMetric(float64(o50.Milliseconds()), "kedge-median-ms")
		b.ReportMetric(float64(p50.Milliseconds()), "pebble-median-ms")
		b.ReportMetric(float64(p50)/float64(o50), "pebble/kedge")
	}
}

// readPebble replays a pebble log the way pebble replays its newest WAL:
// io.EOF and ErrUnexpectedEOF (an invalid or zeroed chunk with nothing
// after it that promises it was synced) end the log; ErrInvalidChunk and
// ErrZeroedChunk are corruption.
func readPebble(t *testing.T, path string) (n int, err error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := record.NewReader(f, 1)
	for {
		rr, err := r.Next()
		if err == nil {
			_, err = io.ReadAll(rr)
		}
		switch {
		case err == nil:
			n++
		case errors.Is(err, io.EOF), errors.Is(err, record.ErrUnexpectedEOF):
			return n, nil
		default:
			return n, err
		}
	}
}

func readKedge(dir string) (int, error) {
	n := 0
	_, err := wal.Replay(dir, 0, false, func([]byte) error { n++; return nil }, func([]byte) error { return nil })
	return n, err
}

// TestTornTailVersusDamage writes the same 200 records to both logs,
// damages both files the same way, and records what each reader makes of
// it. Both tell a torn final record from a changed byte mid-log (pebble
// by the synced offsets in later chunks, Kedge by the offset each record
// names); pebble reads a log cut short as one that ends there, because
// nothing after the cut is left to say otherwise, where Kedge knows the
// size the segment was made with.
func TestTornTailVersusDamage(t *testing.T) {
	cases := []struct {
		name string
		// damage returns the offset and bytes to write, or a size to
		// truncate to, given where record 100 and the last record start
		// and end.
		damage                   func(mid, last, end int64) (at int64, b []byte, cut int64)
		kedgeDamaged, pebbleLost bool
	}{
		{"torn final record", func(_, last, end int64) (int64, []byte, int64) {
			h := last + (end-last)/2
			return h, make([]byte, end-h), -1
		}, false, false},
		{"flipped byte mid-log", func(mid, _, _ int64) (int64, []byte, int64) { return mid + 30, []byte{0x5a}, -1 }, true, false},
		{"cut in the middle", func(mid, _, _ int64) (int64, []byte, int64) { return 0, nil, mid + 10 }, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kdir, pdir := t.TempDir(), t.TempDir()
			ours, theirs := kedgeLog(t, kdir), newPebbleLog(t, pdir)
			var kpos, ppos [][2]int64
			for i := range 200 {
				p := append(payload(singleLeaf, uint64(i)), bytes.Repeat([]byte{byte(i)}, i)...)
				_, before := ours.Position()
				if err := ours.Append(p); err != nil {
					t.Fatal(err)
				}
				_, after := ours.Position()
				kpos = append(kpos, [2]int64{before, after})
				pb := theirs.lw.Size()
				if err := theirs.append(p); err != nil {
					t.Fatal(err)
				}
				ppos = append(ppos, [2]int64{pb, theirs.lw.Size()})
			}
			ours.Close()
			theirs.close()
			hurt := func(path string, pos [][2]int64) {
				at, b, cut := c.damage(pos[100][0], pos[199][0], pos[199][1])
				if cut >= 0 {
					if err := os.Truncate(path, cut); err != nil {
						t.Fatal(err)
					}
					return
				}
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if len(b) == 1 {
					var old [1]byte
					f.ReadAt(old[:], at)
					b[0] ^= old[0]
				}
				if _, err := f.WriteAt(b, at); err != nil {
					t.Fatal(err)
				}
			}
			hurt(filepath.Join(kdir, wal.Name(1)), kpos)
			hurt(filepath.Join(pdir, "pebble.log"), ppos)
			kn, kerr := readKedge(kdir)
			pn, perr := readPebble(t, filepath.Join(pdir, "pebble.log"))
			t.Logf("kedge: %d records, %v", kn, kerr)
			t.Logf("pebble: %d records, %v", pn, perr)
			if got := errors.Is(kerr, wal.ErrDamaged); got != c.kedgeDamaged || (!got && kn != 199) {
				t.Errorf("kedge: damaged %t with %d records, want damaged %t (or the 199 before a torn tail)", got, kn, c.kedgeDamaged)
			}
			if lost := perr == nil && pn < 199; lost != c.pebbleLost {
				t.Errorf("pebble: silently lost records %t (%d read, %v), want %t", lost, pn, perr, c.pebbleLost)
			}
		})
	}
}
