package upstream

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/ingest/v1"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
	"github.com/guildhouse-co/kedge/server/notary/receiver"
)

type keys struct {
	s    note.Signer
	v    note.Verifier
	vkey string
}

func newKeys(t *testing.T, name string) keys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return keys{s, v, vkey}
}

func openLog(t *testing.T, dir string, k keys, min int64) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(dir, ledger.Options{Verifier: k.v, Signer: k.s, MinSize: min})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func fill(t *testing.T, l *ledger.Ledger, from, to, per int, tag string) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := l.Append(fmt.Appendf(nil, "%s entry %d", tag, i)); err != nil {
			t.Fatal(err)
		}
		if (i+1-from)%per == 0 || i == to-1 {
			if _, err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// qm is a reference receiver serving on loopback.
type qm struct {
	r    *receiver.Receiver
	g    *grpc.Server
	addr string
	dir  string
}

func startQM(t *testing.T, dir, addr string) *qm {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	r, err := receiver.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	r.Register(g)
	go g.Serve(ln)
	q := &qm{r: r, g: g, addr: ln.Addr().String(), dir: dir}
	t.Cleanup(q.stop)
	return q
}

func (q *qm) stop() {
	q.g.Stop()
	q.r.Close()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// client runs a Client until the test ends and reports its statuses.
type running struct {
	c      *Client
	cancel context.CancelFunc
	done   chan struct{}
	status chan Status
}

func run(t *testing.T, o Options) *running {
	t.Helper()
	st := make(chan Status, 1024)
	o.OnStatus = func(s Status) {
		select {
		case st <- s:
		default:
		}
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan struct{}), status: st}
	go func() { defer close(r.done); c.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// waitStatus reads statuses until one satisfies ok.
func (r *running) waitStatus(t *testing.T, what string, ok func(Status) bool) Status {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-r.status:
			if ok(s) {
				return s
			}
		case <-timeout:
			t.Fatalf("no status %s; last %+v", what, r.c.Status())
		}
	}
}

func opts(l *ledger.Ledger, k keys, cc *grpc.ClientConn, dir string) Options {
	cur, _, _ := ReadCursor(filepath.Join(dir, CursorFile), k.v)
	return Options{Log: l, Conn: cc, Hello: Hello{Node: "n1", VerifierKey: k.vkey},
		CursorPath: filepath.Join(dir, CursorFile), Cursor: cur, ChunkBytes: 200}
}

func TestShipsInOrderAndResumesFromTheCursor(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	dir := t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 40, 6, "a")
	q := startQM(t, t.TempDir(), "")
	cc := dial(t, q.addr)
	r := run(t, opts(l, k, cc, dir))
	r.waitStatus(t, "caught up at 40", func(s Status) bool { return s.State == StateCaughtUp && s.AckSize == 40 })
	r.stop()
	// More entries while the client is down; a new client resumes from
	// the cursor on disk.
	fill(t, l, 40, 55, 4, "a")
	cur, ok, err := ReadCursor(filepath.Join(dir, CursorFile), k.v)
	if err != nil || !ok || cur.Size != 40 {
		t.Fatalf("cursor after the first run: %+v %v %v", cur, ok, err)
	}
	r = run(t, opts(l, k, cc, dir))
	r.Notify()
	r.waitStatus(t, "caught up at 55", func(s Status) bool { return s.State == StateCaughtUp && s.AckSize == 55 })
	cp, _ := q.r.Checkpoint(l.Origin())
	if cp.Size != 55 || cp.Hash != l.Checkpoint().Hash {
		t.Fatalf("receiver holds %d %s, node %d %s", cp.Size, cp.Hash, l.Size(), l.Checkpoint().Hash)
	}
}

func (r *running) Notify() { r.c.Notify() }

// fakeClock hands every backoff wait to the test.
type fakeClock struct {
	calls chan fakeWait
	done  chan struct{}
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func (f *fakeClock) Now() time.Time { return time.Unix(1700000000, 0) }
func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	select {
	case f.calls <- fakeWait{d, ch}:
	case <-f.done:
	}
	return ch
}

// Quartermaster is down: the client backs off 100 ms, 200 ms, ... up to
// the cap, and ships everything once it is back.
func TestOutageBacksOffCappedThenCatchesUp(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	dir := t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 20, 5, "a")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt fails
	clk := &fakeClock{calls: make(chan fakeWait), done: make(chan struct{})}
	o := opts(l, k, dial(t, addr), dir)
	o.Clock, o.RetryMin, o.RetryMax = clk, 100*time.Millisecond, 800*time.Millisecond
	r := run(t, o)
	want := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, w := range want {
		c := <-clk.calls
		if c.d != w*time.Millisecond {
			t.Fatalf("retry %d: waited %v, want %v", i, c.d, w*time.Millisecond)
		}
		if i == len(want)-1 {
			startQM(t, t.TempDir(), addr)
		}
		c.ch <- time.Now()
	}
	// From here on every wait ends at once (gRPC's own reconnect may need
	// another attempt or two).
	go func() {
		for {
			select {
			case c := <-clk.calls:
				c.ch <- time.Now()
			case <-clk.done:
				return
			}
		}
	}()
	defer close(clk.done)
	r.waitStatus(t, "caught up after the outage", func(s Status) bool { return s.State == StateCaughtUp && s.AckSize == 20 })
}

// A local log rewritten after it was shipped (same key, another history)
// is refused: nothing of it is shipped and Quartermaster keeps what it had.
func TestRewrittenLocalLogIsRefused(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	q := startQM(t, t.TempDir(), "")
	cc := dial(t, q.addr)
	dir := t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 10, 5, "a")
	r := run(t, opts(l, k, cc, dir))
	r.waitStatus(t, "shipped", func(s Status) bool { return s.AckSize == 10 })
	r.stop()
	l.Close()

	forged := t.TempDir()
	f := openLog(t, forged, k, 0)
	fill(t, f, 0, 15, 5, "forged")
	cursor, _ := os.ReadFile(filepath.Join(dir, CursorFile))
	os.WriteFile(filepath.Join(forged, CursorFile), cursor, 0o600)
	r = run(t, opts(f, k, cc, forged))
	s := r.waitStatus(t, "refused", func(s Status) bool { return s.State == StateRefused })
	t.Logf("refused: %s", s.Err)
	if cp, _ := q.r.Checkpoint(f.Origin()); cp.Size != 10 {
		t.Fatalf("Quartermaster holds %d entries after the forged log, want 10", cp.Size)
	}
	// Without the cursor (restored with the log), Quartermaster's own
	// checkpoint still exposes the fork.
	os.Remove(filepath.Join(forged, CursorFile))
	r.stop()
	r = run(t, opts(f, k, cc, forged))
	s = r.waitStatus(t, "refused by Quartermaster's checkpoint", func(s Status) bool { return s.State == StateRefused })
	if !contains(s.Err, "Quartermaster acknowledged") {
		t.Errorf("refusal %q does not name Quartermaster's checkpoint", s.Err)
	}
}

// An older copy of the log restored over the newer one (cursor and all):
// Quartermaster holds more than the log, so nothing is shipped.
func TestRestoredOlderLogIsRefused(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	q := startQM(t, t.TempDir(), "")
	cc := dial(t, q.addr)
	dir, old := t.TempDir(), t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 10, 5, "a")
	l.Close()
	for _, f := range []string{ledger.LogFile, ledger.HashesFile} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(old, f), b, 0o600)
	}
	l = openLog(t, dir, k, 0)
	fill(t, l, 10, 20, 5, "a")
	r := run(t, opts(l, k, cc, dir))
	r.waitStatus(t, "shipped 20", func(s Status) bool { return s.AckSize == 20 })
	r.stop()
	// With the newer cursor, the ledger itself refuses the older copy.
	cur, _, _ := ReadCursor(filepath.Join(dir, CursorFile), k.v)
	if _, err := ledger.Open(old, ledger.Options{Verifier: k.v, Signer: k.s, MinSize: cur.Size}); !errors.Is(err, ledger.ErrRolledBack) {
		t.Fatalf("open the older copy with the cursor's size: %v, want ErrRolledBack", err)
	}
	// With the cursor restored too, the client refuses at Welcome.
	o := openLog(t, old, k, 0)
	r = run(t, opts(o, k, cc, old))
	s := r.waitStatus(t, "refused", func(s Status) bool { return s.State == StateRefused })
	t.Logf("refused: %s", s.Err)
}

// An entry changed on disk after the log was opened (its CRC fixed up) is
// not shipped.
func TestTamperedEntryIsNotShipped(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	q := startQM(t, t.TempDir(), "")
	dir := t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 10, 10, "a")
	// Rewrite entry 3 in place with a valid CRC.
	b, _ := l.Entry(3)
	raw, _ := os.ReadFile(filepath.Join(dir, ledger.LogFile))
	i := indexOf(raw, b)
	forged := append([]byte(nil), b...)
	forged[0] = 'X'
	f, _ := os.OpenFile(filepath.Join(dir, ledger.LogFile), os.O_RDWR, 0)
	f.WriteAt(forged, int64(i))
	f.WriteAt(binary.LittleEndian.AppendUint32(nil, crc(forged)), int64(i-5))
	f.Close()
	r := run(t, opts(l, k, dial(t, q.addr), dir))
	s := r.waitStatus(t, "refused", func(s Status) bool { return s.State == StateRefused })
	if !contains(s.Err, "no longer matches") {
		t.Errorf("refusal %q does not say the entry changed", s.Err)
	}
	if cp, _ := q.r.Checkpoint(l.Origin()); cp.Size != 0 {
		t.Errorf("Quartermaster holds %d entries of a tampered log", cp.Size)
	}
}

// The receiver verifies on its own: a forked history under the pinned key
// is rejected with FAILED_PRECONDITION, and a second key for the same
// origin is refused.
func TestReceiverRejectsForksAndOtherKeys(t *testing.T) {
	k := newKeys(t, "kedge.notary/n1")
	q := startQM(t, t.TempDir(), "")
	cc := dial(t, q.addr)
	dir := t.TempDir()
	l := openLog(t, dir, k, 0)
	fill(t, l, 0, 5, 5, "a")
	r := run(t, opts(l, k, cc, dir))
	r.waitStatus(t, "shipped", func(s Status) bool { return s.AckSize == 5 })
	r.stop()

	f := openLog(t, t.TempDir(), k, 0)
	fill(t, f, 0, 8, 8, "forged")
	stream, err := ingestv1.NewIngestServiceClient(cc).Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Hello{Hello: &ingestv1.Hello{Origin: f.Origin(), VerifierKey: k.vkey}}})
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	for i := int64(5); i < 8; i++ {
		b, _ := f.Entry(i)
		stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Record{Record: &ingestv1.Record{Index: uint64(i), Entry: b}}})
	}
	proof, _ := f.ProveTree(8, 5)
	var pb [][]byte
	for _, h := range proof {
		pb = append(pb, append([]byte(nil), h[:]...))
	}
	stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Checkpoint{Checkpoint: &ingestv1.Checkpoint{
		Note: f.Checkpoint().Note, PreviousSize: 5, ConsistencyProof: pb}}})
	_, err = stream.Recv()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("forked checkpoint: %v, want FAILED_PRECONDITION", err)
	}
	t.Logf("receiver: %v", err)
	if cp, _ := q.r.Checkpoint(f.Origin()); cp.Size != 5 {
		t.Fatalf("receiver holds %d after the fork, want 5", cp.Size)
	}

	other := newKeys(t, "kedge.notary/n1")
	stream, _ = ingestv1.NewIngestServiceClient(cc).Ingest(context.Background())
	stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Hello{Hello: &ingestv1.Hello{Origin: f.Origin(), VerifierKey: other.vkey}}})
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("hello with another key: %v, want FAILED_PRECONDITION", err)
	}
}
