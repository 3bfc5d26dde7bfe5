// Package target is Kedge's gNMI target: Capabilities, Get, Set (with the
// commit-confirmed extension) and Subscribe over the tree store. It is the
// edge where store and tree errors become gRPC status codes. It never
// touches the kernel: Set commits to the store and the reconcilers, which
// watch the store's change feed, do the rest.
package target

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// Authorizer decides what the caller identified in ctx may do. The server
// package implements it from tiers and a policy file; the target calls it
// before touching the store. Errors that wrap ErrUnauthenticated or
// ErrPermissionDenied become those gRPC codes; any other error is
// reported as PermissionDenied too (never as success).
type Authorizer interface {
	// Read allows Capabilities, Get and Subscribe.
	Read(ctx context.Context) error
	// Write allows a Set that changes the given data paths (gNMI string
	// form, e.g. /kedge/posture/config/level). It runs before the Set
	// touches the store.
	Write(ctx context.Context, paths []string) error
	// WriteChanges allows a Set by what its commit would change, leaf by
	// leaf, old value and new (a path alone does not say, for instance,
	// which entries a replace of a whole list removes). It runs inside
	// the commit, after validation and before the commit is made durable;
	// an error aborts the Set and nothing changes.
	WriteChanges(ctx context.Context, p store.Proposed) error
	// Principal names the caller for the record of a commit-confirmed it
	// leaves pending; the target stores it and gives it back to
	// ResolvePending.
	Principal(ctx context.Context) string
	// ResolvePending allows confirming, cancelling or re-timing the
	// pending commit that owner made and that wrote paths.
	ResolvePending(ctx context.Context, owner string, paths []string) error
}

// Sentinels an Authorizer wraps.
var (
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
)

// Options configure a Server; zero values are sensible defaults.
type Options struct {
	Logger *slog.Logger
	// Auth is required: nil refuses every RPC rather than allowing all.
	Auth Authorizer
	// Version is reported in Capabilities' gNMI version field's absence;
	// the gNMI version itself comes from the proto package.
	Version string
	// Limits bound what one request may cost; zero fields take defaults.
	Limits Limits
	// Clock is the time source of stream limits and timestamps (nil: the
	// system clock).
	Clock Clock
}

// Server implements gnmi.GNMIServer.
type Server struct {
	gpb.UnimplementedGNMIServer
	st   *store.Store
	opts Options
	log  *slog.Logger
	cc   *confirmer
	// render shares each commit's rendered paths between streams.
	render renderCache
	// shared is set once the gRPC server uses sharedCodec.
	shared atomic.Bool
	lim    Limits
	clock  Clock
	// busy holds a token per big read running (Limits.BusyReads).
	busy chan struct{}
	// gate tells big reads when a Set is in flight (writegate.go).
	gate *writeGate
	// queued, when set (tests), is told of every notification a stream
	// queues, with its number of updates.
	queued func(updates int)
}

// Register adds the server to a gRPC server (after GRPCServerOption, when
// that is used).
func (s *Server) Register(g *grpc.Server) { s.register(g) }

// New returns a target over st. A commit-confirmed left pending by a
// previous run is restored: rolled back at once if its deadline passed,
// otherwise re-armed.
func New(st *store.Store, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cc, err := newConfirmer(st, o.Logger)
	if err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	lim := o.Limits.withDefaults()
	return &Server{st: st, opts: o, log: o.Logger, cc: cc, lim: lim, clock: o.Clock,
		busy: make(chan struct{}, lim.BusyReads), gate: newWriteGate()}, nil
}

// Close stops the rollback timer; open streams end when the store closes.
func (s *Server) Close() { s.cc.close() }
