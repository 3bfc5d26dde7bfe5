// Package receiver is the reference Quartermaster receiver: it implements
// the ingestion service (kedge.quartermaster.ingest.v1), stores each
// node's log in a ledger of its own (one directory per origin), pins the
// node's checkpoint key on first contact, and acknowledges a checkpoint
// only after verifying its signature, the consistency proof from the last
// acknowledged checkpoint, and that the records it received hash to it.
// The tests use it, and server/cmd/quartermaster-receiver runs it by
// hand.
package receiver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/ingest/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// keyFile pins an origin's verifier key.
const keyFile = "verifier.key"

// Receiver stores the logs nodes ship.
type Receiver struct {
	ingestv1.UnimplementedIngestServiceServer
	dir string
	log *slog.Logger

	mu    sync.Mutex
	logs  map[string]*originLog
	added chan struct{} // closed and replaced on every acknowledged checkpoint
}

type originLog struct {
	busy chan struct{} // one shipping session at a time
	led  *ledger.Ledger
	vkey string
}

// New opens (creating) a receiver directory and the logs already in it.
func New(dir string, log *slog.Logger) (*Receiver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create receiver dir: %w", err)
	}
	r := &Receiver{dir: dir, log: log, logs: map[string]*originLog{}, added: make(chan struct{})}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list receiver dir: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), keyFile))
		if err != nil {
			continue // not a log directory
		}
		vkey := strings.TrimSpace(string(b))
		v, err := note.NewVerifier(vkey)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("open receiver log %s: %w", e.Name(), err)
		}
		led, err := ledger.Open(filepath.Join(dir, e.Name()), ledger.Options{Verifier: v, Logger: log})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("open receiver log %s: %w", e.Name(), err)
		}
		r.logs[v.Name()] = &originLog{led: led, vkey: vkey, busy: make(chan struct{}, 1)}
	}
	return r, nil
}

// Register adds the ingestion service to a gRPC server.
func (r *Receiver) Register(g *grpc.Server) { ingestv1.RegisterIngestServiceServer(g, r) }

// Close closes every log.
func (r *Receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, o := range r.logs {
		errs = append(errs, o.led.Close())
	}
	return errors.Join(errs...)
}

// originFor returns the log of an origin, creating it and pinning vkey on
// first contact.
func (r *Receiver) originFor(h *ingestv1.Hello) (*originLog, error) {
	v, err := note.NewVerifier(h.GetVerifierKey())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "hello: verifier key: %v", err)
	}
	if v.Name() != h.GetOrigin() {
		return nil, status.Errorf(codes.InvalidArgument, "hello: origin %q is not the key's name %q", h.GetOrigin(), v.Name())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.logs[h.GetOrigin()]; ok {
		if o.vkey != h.GetVerifierKey() {
			return nil, status.Errorf(codes.FailedPrecondition, "hello: log %s is pinned to another key (%s); a new key means a new log", h.GetOrigin(), o.vkey)
		}
		return o, nil
	}
	name := url.PathEscape(h.GetOrigin())
	if name == "." || name == ".." {
		return nil, status.Errorf(codes.InvalidArgument, "hello: origin %q cannot name a directory", h.GetOrigin())
	}
	dir := filepath.Join(r.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, status.Errorf(codes.Internal, "create log dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte(h.GetVerifierKey()+"\n"), 0o600); err != nil {
		return nil, status.Errorf(codes.Internal, "pin key: %v", err)
	}
	led, err := ledger.Open(dir, ledger.Options{Verifier: v, Logger: r.log})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "open log: %v", err)
	}
	o := &originLog{led: led, vkey: h.GetVerifierKey(), busy: make(chan struct{}, 1)}
	r.logs[h.GetOrigin()] = o
	r.log.Info("new notary log", "origin", h.GetOrigin(), "node", h.GetNode(), "cluster", h.GetCluster())
	return o, nil
}

// Ingest is one shipping session.
func (r *Receiver) Ingest(stream ingestv1.IngestService_IngestServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	h := req.GetHello()
	if h == nil {
		return status.Error(codes.InvalidArgument, "the first message must be hello")
	}
	o, err := r.originFor(h)
	if err != nil {
		return err
	}
	// A node reconnecting after an outage may get here before the server
	// has noticed its previous stream ended: wait for that one.
	select {
	case o.busy <- struct{}{}:
	case <-stream.Context().Done():
		return status.Errorf(codes.Aborted, "another session is shipping log %s", h.GetOrigin())
	}
	defer func() { <-o.busy }()
	defer o.led.Discard()
	cp := o.led.Checkpoint()
	if err := stream.Send(&ingestv1.IngestResponse{Message: &ingestv1.IngestResponse_Welcome{Welcome: &ingestv1.Welcome{
		CheckpointNote: cp.Note, TreeSize: uint64(cp.Size)}}}); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch m := req.GetMessage().(type) {
		case *ingestv1.IngestRequest_Record:
			if next := o.led.Next(); int64(m.Record.GetIndex()) != next {
				return status.Errorf(codes.InvalidArgument, "record %d out of order: expected %d", m.Record.GetIndex(), next)
			}
			if _, err := o.led.Append(m.Record.GetEntry()); err != nil {
				return status.Errorf(codes.InvalidArgument, "record %d: %v", m.Record.GetIndex(), err)
			}
		case *ingestv1.IngestRequest_Checkpoint:
			ack, err := r.checkpoint(o, m.Checkpoint)
			if err != nil {
				r.log.Error("refused a notary checkpoint", "origin", h.GetOrigin(), "err", err)
				return err
			}
			if err := stream.Send(&ingestv1.IngestResponse{Message: &ingestv1.IngestResponse_Ack{Ack: ack}}); err != nil {
				return err
			}
		default:
			return status.Error(codes.InvalidArgument, "unexpected message: hello again")
		}
	}
}

// checkpoint verifies and stores one checkpoint over the pending records.
func (r *Receiver) checkpoint(o *originLog, c *ingestv1.Checkpoint) (*ingestv1.Ack, error) {
	prev := o.led.Checkpoint()
	if int64(c.GetPreviousSize()) != prev.Size {
		return nil, status.Errorf(codes.FailedPrecondition, "checkpoint: it extends size %d, the last acknowledged is %d", c.GetPreviousSize(), prev.Size)
	}
	cp, err := ledger.ParseCheckpoint(c.GetNote(), o.led.Verifier())
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "checkpoint: %v", err)
	}
	if prev.Size > 0 {
		proof := make(tlog.TreeProof, len(c.GetConsistencyProof()))
		for i, b := range c.GetConsistencyProof() {
			if len(b) != tlog.HashSize {
				return nil, status.Errorf(codes.InvalidArgument, "checkpoint: proof hash %d has %d bytes", i, len(b))
			}
			copy(proof[i][:], b)
		}
		if err := tlog.CheckTree(proof, cp.Size, cp.Hash, prev.Size, prev.Hash); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "checkpoint: size %d is not consistent with the acknowledged size %d: %v (a forked log)", cp.Size, prev.Size, err)
		}
	}
	stored, err := o.led.FlushNote(c.GetNote())
	if err != nil {
		if errors.Is(err, ledger.ErrTampered) || errors.Is(err, ledger.ErrFork) {
			return nil, status.Errorf(codes.FailedPrecondition, "checkpoint: %v", err)
		}
		return nil, status.Errorf(codes.Internal, "store checkpoint: %v", err)
	}
	r.mu.Lock()
	close(r.added)
	r.added = make(chan struct{})
	r.mu.Unlock()
	return &ingestv1.Ack{TreeSize: uint64(stored.Size), RootHash: stored.Hash[:]}, nil
}

// Origins lists the logs held, sorted.
func (r *Receiver) Origins() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.logs))
	for o := range r.logs {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// Checkpoint returns the last acknowledged checkpoint of a log.
func (r *Receiver) Checkpoint(origin string) (ledger.Checkpoint, bool) {
	r.mu.Lock()
	o, ok := r.logs[origin]
	r.mu.Unlock()
	if !ok {
		return ledger.Checkpoint{}, false
	}
	return o.led.Checkpoint(), true
}

// Entries decodes the acknowledged entries of a log from index from on.
func (r *Receiver) Entries(origin string, from int64) ([]*qmv1.LogEntry, error) {
	r.mu.Lock()
	o, ok := r.logs[origin]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("read log %s: not held", origin)
	}
	var out []*qmv1.LogEntry
	err := o.led.Scan(from, func(i int64, b []byte) (bool, error) {
		e := &qmv1.LogEntry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return false, fmt.Errorf("decode entry %d of %s: %w", i, origin, err)
		}
		out = append(out, e)
		return true, nil
	})
	return out, err
}

// Changed returns a channel closed at the next acknowledged checkpoint
// (tests wait on it instead of sleeping).
func (r *Receiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.added
}
