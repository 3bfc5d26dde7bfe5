// Package upstream ships a node's notary log to Quartermaster: records
// and the checkpoints that cover them in log order over the ingestion
// stream (kedge.quartermaster.ingest.v1), one acknowledged checkpoint at a
// time, with retries under a capped exponential backoff and a durable
// cursor (the last acknowledged checkpoint) that survives restarts and
// outages. Before it sends a checkpoint it proves, from its own log, that
// the checkpoint extends the last one Quartermaster acknowledged; a local
// log that was rolled back, rewritten or forked is refused loudly and
// never shipped.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/ingest/v1"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// Log is the local notary log as the client reads it (*ledger.Ledger).
type Log interface {
	Origin() string
	Verifier() note.Verifier
	Size() int64
	Entry(i int64) ([]byte, error)
	CheckpointAt(size int64) (ledger.Checkpoint, bool, error)
	NextCheckpoint(from, budget int64) int64
	TreeHash(n int64) (tlog.Hash, error)
	ProveTree(n, old int64) (tlog.TreeProof, error)
	HashReader() tlog.HashReader
}

// Clock is time for the backoff (tests inject a fake one).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// States of the client (leaf /kedge/notary/state/upstream-state).
const (
	StateConnecting = "connecting"
	StateShipping   = "shipping"
	StateCaughtUp   = "caught-up"
	StateRetrying   = "retrying"
	// StateRefused: the local log failed a consistency check (rolled
	// back, forked, tampered) or Quartermaster rejected it; the client
	// keeps checking at the longest backoff but ships nothing.
	StateRefused = "refused"
)

// ErrRefused wraps every refusal to ship: the local log is not an
// extension of what Quartermaster acknowledged, or Quartermaster rejected
// a checkpoint.
var ErrRefused = errors.New("upstream shipping refused")

// Status is the client's progress.
type Status struct {
	State   string
	Err     string
	AckSize int64
	AckHash tlog.Hash
	AckTime time.Time
}

// Hello identifies the log to Quartermaster.
type Hello struct {
	Node, Cluster string
	VerifierKey   string
}

// Options configure a Client.
type Options struct {
	Log   Log
	Conn  grpc.ClientConnInterface
	Hello Hello
	// CursorPath is the durable cursor file (see CursorFile).
	CursorPath string
	// Cursor is the cursor as read at start (ReadCursor).
	Cursor      ledger.Checkpoint
	Logger      *slog.Logger
	Clock       Clock
	RetryMin    time.Duration // default 100 ms
	RetryMax    time.Duration // default 30 s
	ChunkBytes  int64         // entries shipped per checkpoint, about (default 1 MiB)
	OnStatus    func(Status)
	DialTimeout time.Duration // bounds one session's wait for Welcome (default 10 s)
}

// Client ships the log. Run it once; Notify it when the log grows.
type Client struct {
	o    Options
	log  *slog.Logger
	grew chan struct{}

	mu     sync.Mutex
	status Status
	cursor ledger.Checkpoint
}

// New returns a client; it does nothing until Run.
func New(o Options) (*Client, error) {
	if o.Log == nil || o.Conn == nil || o.CursorPath == "" {
		return nil, errors.New("create upstream client: log, connection and cursor path are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 1 << 20
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	c := &Client{o: o, log: o.Logger, grew: make(chan struct{}, 1), cursor: o.Cursor}
	c.status = Status{State: StateConnecting, AckSize: o.Cursor.Size, AckHash: o.Cursor.Hash}
	return c, nil
}

// Notify tells the client that the log has new durable entries.
func (c *Client) Notify() {
	select {
	case c.grew <- struct{}{}:
	default:
	}
}

// Status returns the client's progress.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Client) setStatus(f func(s *Status)) {
	c.mu.Lock()
	f(&c.status)
	s := c.status
	c.mu.Unlock()
	if c.o.OnStatus != nil {
		c.o.OnStatus(s)
	}
}

// Run ships until ctx is done. Failures are retried with capped
// exponential backoff; refusals are logged at ERROR on every attempt and
// retried at the longest backoff, since only an operator can resolve them.
func (c *Client) Run(ctx context.Context) error {
	var backoff time.Duration
	for ctx.Err() == nil {
		progressed, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = 0
		}
		switch {
		case errors.Is(err, ErrRefused):
			backoff = c.o.RetryMax
			c.log.Error("notary log NOT shipped to Quartermaster", "err", err)
			c.setStatus(func(s *Status) { s.State, s.Err = StateRefused, err.Error() })
		default:
			backoff = min(max(2*backoff, c.o.RetryMin), c.o.RetryMax)
			c.log.Warn("ship notary log", "err", err, "retry_in", backoff)
			c.setStatus(func(s *Status) { s.State, s.Err = StateRetrying, err.Error() })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.o.Clock.After(backoff):
		}
	}
	return nil
}

// session runs one ingestion stream. progressed reports whether any
// checkpoint was acknowledged.
func (c *Client) session(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.setStatus(func(s *Status) { s.State = StateConnecting })
	stream, err := ingestv1.NewIngestServiceClient(c.o.Conn).Ingest(ctx)
	if err != nil {
		return false, fmt.Errorf("open ingest stream: %w", err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Hello{Hello: &ingestv1.Hello{
		Origin: c.o.Log.Origin(), Node: c.o.Hello.Node, Cluster: c.o.Hello.Cluster, VerifierKey: c.o.Hello.VerifierKey,
	}}}); err != nil {
		return false, fmt.Errorf("send hello: %w", recvErr(stream, err))
	}
	// A watchdog, not logic: a Quartermaster that accepts the stream but
	// never answers must not hold the client forever.
	watchdog := time.AfterFunc(c.o.DialTimeout, cancel)
	resp, err := stream.Recv()
	watchdog.Stop()
	if err != nil {
		return false, fmt.Errorf("receive welcome: %w", rejected(err))
	}
	w := resp.GetWelcome()
	if w == nil {
		return false, errors.New("receive welcome: Quartermaster sent something else first")
	}
	prev, err := c.resume(w)
	if err != nil {
		return false, err
	}
	for {
		from := prev.Size
		to := c.o.Log.NextCheckpoint(from, c.o.ChunkBytes)
		if to == 0 {
			c.setStatus(func(s *Status) { s.State, s.Err = StateCaughtUp, "" })
			select {
			case <-ctx.Done():
				return progressed, ctx.Err()
			case <-c.grew:
				continue
			}
		}
		c.setStatus(func(s *Status) { s.State = StateShipping })
		cp, err := c.ship(stream, prev, to)
		if err != nil {
			return progressed, err
		}
		if err := writeCursor(c.o.CursorPath, cp); err != nil {
			return progressed, err
		}
		progressed = true
		c.mu.Lock()
		c.cursor = cp
		c.mu.Unlock()
		now := c.o.Clock.Now()
		c.setStatus(func(s *Status) { s.AckSize, s.AckHash, s.AckTime, s.Err = cp.Size, cp.Hash, now, "" })
		prev = cp
	}
}

// resume checks that the local log extends both what Quartermaster holds
// and the durable cursor, and returns where to ship from.
func (c *Client) resume(w *ingestv1.Welcome) (ledger.Checkpoint, error) {
	l := c.o.Log
	var remote ledger.Checkpoint
	if len(w.GetCheckpointNote()) > 0 {
		cp, err := ledger.ParseCheckpoint(w.GetCheckpointNote(), l.Verifier())
		if err != nil {
			return ledger.Checkpoint{}, fmt.Errorf("%w: Quartermaster holds a checkpoint for %s that this node's key did not sign: %w", ErrRefused, l.Origin(), err)
		}
		remote = cp
	}
	c.mu.Lock()
	cursor := c.cursor
	c.mu.Unlock()
	for _, known := range []struct {
		what string
		cp   ledger.Checkpoint
	}{{"Quartermaster acknowledged", remote}, {"the durable cursor recorded", cursor}} {
		if known.cp.Size == 0 {
			continue
		}
		if known.cp.Size > l.Size() {
			return ledger.Checkpoint{}, fmt.Errorf("%w: %w: the local log holds %d entries, %s %d (an older copy restored over the log?)",
				ErrRefused, ledger.ErrRolledBack, l.Size(), known.what, known.cp.Size)
		}
		h, err := l.TreeHash(known.cp.Size)
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		if h != known.cp.Hash {
			return ledger.Checkpoint{}, fmt.Errorf("%w: %w: the local log's first %d entries hash to %s, %s %s (the local log was rewritten)",
				ErrRefused, ledger.ErrFork, known.cp.Size, h, known.what, known.cp.Hash)
		}
	}
	if remote.Size < cursor.Size {
		c.log.Warn("Quartermaster holds less of the notary log than it acknowledged before; shipping again from its checkpoint",
			"quartermaster", remote.Size, "acknowledged", cursor.Size)
	}
	return remote, nil
}

// ship sends entries [prev.Size, to) and the checkpoint at to, after
// proving locally that it extends prev, and waits for the Ack.
func (c *Client) ship(stream ingestv1.IngestService_IngestClient, prev ledger.Checkpoint, to int64) (ledger.Checkpoint, error) {
	l := c.o.Log
	cp, ok, err := l.CheckpointAt(to)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if !ok {
		return ledger.Checkpoint{}, fmt.Errorf("ship notary log: no checkpoint at size %d", to)
	}
	proof, err := l.ProveTree(to, prev.Size)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	if prev.Size > 0 {
		if err := tlog.CheckTree(proof, to, cp.Hash, prev.Size, prev.Hash); err != nil {
			return ledger.Checkpoint{}, fmt.Errorf("%w: %w: the checkpoint at %d does not extend the acknowledged one at %d: %w",
				ErrRefused, ledger.ErrFork, to, prev.Size, err)
		}
	}
	for i := prev.Size; i < to; i++ {
		data, err := l.Entry(i)
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		// The stored hash is what the checkpoint signed; bytes changed
		// on disk since then must not be shipped as if they were it.
		hs, err := l.HashReader().ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		if tlog.RecordHash(data) != hs[0] {
			return ledger.Checkpoint{}, fmt.Errorf("%w: %w: entry %d on disk no longer matches the hash the log recorded", ErrRefused, ledger.ErrTampered, i)
		}
		if err := stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Record{Record: &ingestv1.Record{Index: uint64(i), Entry: data}}}); err != nil {
			return ledger.Checkpoint{}, fmt.Errorf("send record %d: %w", i, recvErr(stream, err))
		}
	}
	pb := make([][]byte, len(proof))
	for i, h := range proof {
		pb[i] = bytes.Clone(h[:])
	}
	if err := stream.Send(&ingestv1.IngestRequest{Message: &ingestv1.IngestRequest_Checkpoint{Checkpoint: &ingestv1.Checkpoint{
		Note: cp.Note, PreviousSize: uint64(prev.Size), ConsistencyProof: pb,
	}}}); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("send checkpoint %d: %w", to, recvErr(stream, err))
	}
	resp, err := stream.Recv()
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("receive ack of %d: %w", to, rejected(err))
	}
	ack := resp.GetAck()
	if ack == nil || int64(ack.GetTreeSize()) != to || !bytes.Equal(ack.GetRootHash(), cp.Hash[:]) {
		return ledger.Checkpoint{}, fmt.Errorf("%w: Quartermaster acknowledged %v, not checkpoint %d %s", ErrRefused, resp, to, cp.Hash)
	}
	return cp, nil
}

// recvErr returns the stream's status when a Send fails because the
// server ended it.
func recvErr(stream ingestv1.IngestService_IngestClient, err error) error {
	if _, rerr := stream.Recv(); rerr != nil {
		return rejected(rerr)
	}
	return err
}

// rejected marks Quartermaster's verdicts on the log as refusals.
func rejected(err error) error {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.DataLoss:
		return fmt.Errorf("%w: Quartermaster rejected the log: %w", ErrRefused, err)
	}
	return err
}
