package notary

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/yang"
)

// The notary benchmarks run their whole workload in one iteration (make
// bench uses -benchtime 1x) and report rates and percentiles as metrics.

func pct(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func benchNotary(b *testing.B, st *store.Store, a *Annotator) *Notary {
	b.Helper()
	o := Options{Dir: b.TempDir(), Node: "bench", Store: st}
	if a != nil {
		o.CommitLog, o.Annotator = st, a
	}
	n, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return n
}

func applyAccord(b *testing.B, n *Notary, a accord.Accord) {
	b.Helper()
	if err := n.Step().Apply(context.Background(), posture.Transition{From: a.Level, To: a.Level, Accord: a}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNotaryAppendLevel5 records 100,000 session transits at level
// 5's batched flushing (every transit sampled, so each is an artifact) and
// reports artifacts made durable per second, from the first record to the
// last one's flush.
func BenchmarkNotaryAppendLevel5(b *testing.B) {
	for range b.N {
		st := openStore(b, b.TempDir())
		n := benchNotary(b, st, nil)
		a, _ := accord.Default(5)
		a.NotarySamplingPercent = 100
		applyAccord(b, n, a)
		const count = 100000
		start := time.Now()
		for i := 0; i < count; i++ {
			for !n.RecordTransit(notarymodel.Transit{SessionID: "s" + strconv.Itoa(i), Kind: notarymodel.TransitGrant,
				Level: 5, PeerSPIFFEID: "spiffe://example.org/ns/ops/sa/op", SessionType: "routine", Tier: "operator"}) {
				// The queue is full: the writer is behind; let it run.
				if err := n.settle(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := n.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if got := n.Ledger().Size(); got != count {
			b.Fatalf("%d artifacts, want %d", got, count)
		}
		b.ReportMetric(count/took.Seconds(), "artifacts/s")
		b.ReportMetric(float64(n.Ledger().Bytes())/count, "log-B/artifact")
		// Transits refused by a full queue (each retried here until taken).
		b.ReportMetric(float64(n.Dropped()), "queue-full")
		n.Close()
		st.Close()
	}
}

// fsyncFloor times n fdatasyncs of one small write each into a
// preallocated file in dir: the disk's own per-record floor.
func fsyncFloor(b *testing.B, dir string, n int) []time.Duration {
	b.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "fsync-floor"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 16<<20); err != nil {
		b.Skipf("fallocate: %v", err)
	}
	f.Sync()
	buf := make([]byte, 400)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i*len(buf))); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// BenchmarkNotaryFlushLevel1 times, at level 1 (a flush and a signed
// checkpoint on every record), each record from RecordTransit until it is
// durable, beside a bare write+fdatasync of the same disk in the same run.
func BenchmarkNotaryFlushLevel1(b *testing.B) {
	for range b.N {
		st := openStore(b, b.TempDir())
		n := benchNotary(b, st, nil)
		a, _ := accord.Default(1)
		applyAccord(b, n, a)
		const count = 2000
		lat := make([]time.Duration, 0, count)
		for i := 0; i < count; i++ {
			grew := n.Grew()
			start := time.Now()
			if !n.RecordTransit(notarymodel.Transit{SessionID: "s" + strconv.Itoa(i), Kind: notarymodel.TransitGrant, Level: 1,
				Frames: []notarymodel.FrameHeader{{Inbound: true, Type: "ATTEST-INIT", Seq: 1, Length: 300, PayloadSHA256: make([]byte, 32)}}}) {
				b.Fatal("transit not recorded at level 1")
			}
			<-grew
			lat = append(lat, time.Since(start))
		}
		floor := fsyncFloor(b, b.TempDir(), count)
		if got := n.Ledger().Size(); got != count {
			b.Fatalf("%d records durable, want %d", got, count)
		}
		p50, p99, f50, f99 := pct(lat, .5), pct(lat, .99), pct(floor, .5), pct(floor, .99)
		b.ReportMetric(us(p50), "p50-µs")
		b.ReportMetric(us(p99), "p99-µs")
		b.ReportMetric(us(f50), "fdatasync-p50-µs")
		b.ReportMetric(us(f99), "fdatasync-p99-µs")
		b.ReportMetric(float64(p99)/float64(f99), "p99/fdatasync-p99")
		n.Close()
		st.Close()
	}
}

// BenchmarkMutationCost is the single-leaf durable commit with and without
// the notary, side by side in one run: commits alternate between a store
// with no notary and one opened as the daemon opens it (annotation in the
// commit record, log kept for the notary) with a running notary recording
// every commit. It reports both p50/p99 and the ratio of p99s, at the
// notary's level-5 fidelity (batched) and at level 1 (a flush per record,
// which competes with the store's own fdatasync for the disk).
func BenchmarkMutationCost(b *testing.B) {
	for _, lvl := range []uint8{5, 1} {
		b.Run(fmt.Sprintf("level%d", lvl), func(b *testing.B) {
			for range b.N {
				schema, err := yang.Schema()
				if err != nil {
					b.Fatal(err)
				}
				plain, err := store.Open(b.TempDir(), schema, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				ann := NewAnnotator(func(context.Context) (notarymodel.Writer, bool) {
					return notarymodel.Writer{Identity: "bench", Tier: "master", Method: "unix"}, true
				})
				noted, err := store.Open(b.TempDir(), schema, store.Options{Annotate: ann.Annotate, KeepLog: true})
				if err != nil {
					b.Fatal(err)
				}
				n := benchNotary(b, noted, ann)
				a, _ := accord.Default(lvl)
				applyAccord(b, n, a)
				for _, s := range []*store.Store{plain, noted} {
					fillRoutes(b, s, 10000)
				}
				const count = 2000
				var without, with []time.Duration
				for i := 0; i < count; i++ {
					for j, s := range []*store.Store{plain, noted} {
						if i%2 == 1 { // alternate which goes first
							s = []*store.Store{noted, plain}[j]
						}
						op := store.Op{Kind: store.OpUpdate, Path: path(b, fmt.Sprintf("/kedge/routes/route[prefix=10.%d.%d.0/24][table=254]/config/owner", (i%10000)/256, i%256)),
							Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: strconv.Itoa(i)}}}
						start := time.Now()
						if _, err := s.Commit(context.Background(), []store.Op{op}); err != nil {
							b.Fatal(err)
						}
						d := time.Since(start)
						if s == plain {
							without = append(without, d)
						} else {
							with = append(with, d)
						}
					}
				}
				if err := n.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				if got := n.lastSeq.Load(); got < uint64(count) {
					b.Fatalf("notary recorded up to commit %d of %d+", got, count)
				}
				w50, w99, n50, n99 := pct(without, .5), pct(without, .99), pct(with, .5), pct(with, .99)
				b.ReportMetric(us(w50), "off-p50-µs")
				b.ReportMetric(us(w99), "off-p99-µs")
				b.ReportMetric(us(n50), "on-p50-µs")
				b.ReportMetric(us(n99), "on-p99-µs")
				b.ReportMetric(float64(n99)/float64(w99), "p99-on/off")
				b.ReportMetric(float64(n50)/float64(w50), "p50-on/off")
				n.Close()
				noted.Close()
				plain.Close()
			}
		})
	}
}

// fillRoutes commits n routes in one transaction.
func fillRoutes(b *testing.B, s *store.Store, n int) {
	b.Helper()
	ops := make([]store.Op, 0, n)
	for i := 0; i < n; i++ {
		prefix := fmt.Sprintf("%d.%d.%d.0/24", 10+i/65536, (i/256)%256, i%256)
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: path(b, "/kedge/routes/route[prefix="+prefix+"][table=254]/config"),
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"prefix":"` + prefix + `","table":254,"device":"eth0","class":"pod"}`)}}})
	}
	if _, err := s.Commit(context.Background(), ops); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBulkCommitCost is a 100,000-route commit into a store without
// the notary and into one opened for it (annotation with every old value
// in the commit record), one after the other in the same run, and how long
// the notary then takes to record the commit (500,000 changed leaves,
// hashed and digested; listed up to 1,024 at level 5).
func BenchmarkBulkCommitCost(b *testing.B) {
	for range b.N {
		schema, err := yang.Schema()
		if err != nil {
			b.Fatal(err)
		}
		plain, err := store.Open(b.TempDir(), schema, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ann := NewAnnotator(nil)
		noted, err := store.Open(b.TempDir(), schema, store.Options{Annotate: ann.Annotate, KeepLog: true})
		if err != nil {
			b.Fatal(err)
		}
		n := benchNotary(b, noted, ann)
		a, _ := accord.Default(5)
		applyAccord(b, n, a)
		start := time.Now()
		fillRoutes(b, plain, 100000)
		off := time.Since(start)
		start = time.Now()
		fillRoutes(b, noted, 100000)
		on := time.Since(start)
		if err := n.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		recorded := time.Since(start)
		b.ReportMetric(off.Seconds(), "off-commit-s")
		b.ReportMetric(on.Seconds(), "on-commit-s")
		b.ReportMetric(on.Seconds()/off.Seconds(), "on/off")
		b.ReportMetric(recorded.Seconds(), "on-until-notarized-s")
		n.Close()
		noted.Close()
		plain.Close()
	}
}
