package gribi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
)

// DefaultNetworkInstance is the name of the one network instance Kedge
// serves (gribigo's and the compliance suite's default).
const DefaultNetworkInstance = "DEFAULT"

// Store is what the service needs of the tree store (*store.Store).
type Store interface {
	Commit(ctx context.Context, ops []store.Op) (*store.Commit, error)
	Read(fn func(t *tree.Tree) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
	AddValidator(prefix string, v store.Validator)
}

// Writer is who a Modify or Flush acts for.
type Writer struct {
	Name string // tier:name
	Tier string // the route tier of what it writes
}

// Authorizer decides who may use the service (server/auth implements it
// from the identity the interceptors attached and the policy file).
type Authorizer interface {
	// GRIBIWrite allows Modify and Flush; its error carries a gRPC status
	// (PERMISSION_DENIED, UNAUTHENTICATED).
	GRIBIWrite(ctx context.Context) (Writer, error)
	// GRIBIRead allows Get.
	GRIBIRead(ctx context.Context) error
}

// Config is what a Service is built from.
type Config struct {
	Store  Store
	Auth   Authorizer
	Logger *slog.Logger
	// Class is the route class of the IP entries sessions write (the
	// daemon's gribi-class setting).
	Class string
	// FIB says whether a route backend programs the entries: without one
	// a session asking for RIB_AND_FIB_ACK is refused.
	FIB bool
	// MaxBatch bounds the operations one commit holds (default 65536).
	MaxBatch int
	// WireCodec says the gRPC server runs the gNMI target's codec
	// (target.GRPCServerOption): Modify then decodes its requests and
	// encodes its answers as wire bytes itself (target.WireDecoder,
	// target.WireEncoded) instead of through generated messages.
	WireCodec bool
}

// Service is the gRIBI service. Create it with New, Register it on gRPC
// servers, Start it once and Close it.
type Service struct {
	spb.UnimplementedGRIBIServer
	cfg Config
	log *slog.Logger

	rib  *aft.RIB // owned by the writer goroutine once started
	work chan work
	fib  *fibWaits

	mu       sync.Mutex
	sessions map[*session]struct{}
	elec     uint128
	master   *session
	nextID   uint64
	bootID   string

	started chan struct{} // closed once the RIB is loaded
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New builds the service; it serves nothing until Start has loaded the
// RIB (until then Modify, Get and Flush answer UNAVAILABLE).
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 65536
	}
	return &Service{cfg: c, log: c.Logger, rib: aft.New(), work: make(chan work, 1024), fib: newFIBWaits(),
		sessions: map[*session]struct{}{}, started: make(chan struct{})}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { spb.RegisterGRIBIServer(g, s) }

// Start loads the RIB from the tree (removing the entries of DELETE
// sessions, which cannot have outlived the daemon that served them),
// then runs the writer and the FIB watch until ctx ends or Close.
func (s *Service) Start(ctx context.Context, bootID string) error {
	s.bootID = bootID
	s.cfg.Store.AddValidator(aftPath.SchemaPath(), lockdownRule)
	if err := s.restore(ctx); err != nil {
		return err
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	ctx = s.ctx
	w, err := s.cfg.Store.ReadWatch(func(t *tree.Tree, seq uint64) error {
		s.fib.observe(programmedSeq(t))
		return nil
	})
	if err != nil {
		return fmt.Errorf("start gribi: %w", err)
	}
	s.wg.Go(func() { s.writer(ctx) })
	s.wg.Go(func() { s.watchFIB(ctx, w) })
	close(s.started)
	return nil
}

// Close stops the writer and the FIB watch. Open Modify streams end when
// their gRPC server stops.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

func programmedSeq(t *tree.Tree) uint64 {
	v, _ := kedgetree.Of(t).Kedge().Aft().State().ProgrammedSequence()
	return v
}

// restore rebuilds the RIB from /kedge/aft and removes what must not
// survive a restart: the entries of DELETE sessions (but those a
// preserved entry references, as when such a session ends) and the
// session records no entry uses.
func (s *Service) restore(ctx context.Context) error {
	var st stored
	if err := s.cfg.Store.Read(func(t *tree.Tree) error {
		var err error
		st, err = load(t)
		return err
	}); err != nil {
		return fmt.Errorf("restore gribi rib: %w", err)
	}
	// Every entry goes into the RIB, then each DELETE session's entries
	// leave it as they would have when the session ended: those another
	// session's entries still reference stay.
	for i := range st.entries {
		e := &st.entries[i]
		for _, r := range s.rib.Apply(&aft.Op{ID: uint64(i + 1), Verb: aft.Add, Entry: *e}) {
			if !r.OK {
				return fmt.Errorf("restore gribi rib: %s: %w", r.Op.Entry.Key(), r.Err)
			}
		}
	}
	if n := s.rib.Pending(); n > 0 {
		return fmt.Errorf("restore gribi rib: %d entries reference entries the tree lacks", n)
	}
	var drop []store.Op
	removed := 0
	for id, rec := range st.sessions {
		if rec.Preserve {
			continue
		}
		for _, k := range s.rib.DeleteSession(id) {
			drop = append(drop, deleteOp(k))
			removed++
		}
	}
	used := map[string]bool{}
	for _, k := range s.rib.Keys() {
		e, _ := s.rib.Get(k)
		used[e.Meta.Session] = true
	}
	for id := range st.sessions {
		if !used[id] {
			drop = append(drop, store.Delete(aftPath.Sessions().Session(id)))
		}
	}
	if len(drop) > 0 {
		if _, err := s.cfg.Store.Commit(ctx, drop); err != nil {
			return fmt.Errorf("restore gribi rib: remove entries of ended sessions: %w", err)
		}
	}
	s.log.Info("gribi rib restored", "entries", s.rib.Len(), "removed", removed)
	return nil
}

// ready fails an RPC that arrives before Start.
func (s *Service) ready() error {
	select {
	case <-s.started:
		return nil
	default:
		return status.Error(codes.Unavailable, "gribi: the RIB is still loading")
	}
}

// Get streams the RIB's entries of the requested AFT.
func (s *Service) Get(req *spb.GetRequest, stream spb.GRIBI_GetServer) error {
	if err := s.ready(); err != nil {
		return err
	}
	if err := s.cfg.Auth.GRIBIRead(stream.Context()); err != nil {
		return err
	}
	switch ni := req.GetNetworkInstance().(type) {
	case *spb.GetRequest_Name:
		if ni.Name != DefaultNetworkInstance {
			return status.Errorf(codes.InvalidArgument, "get: unknown network instance %q", ni.Name)
		}
	case *spb.GetRequest_All:
	default:
		return status.Error(codes.InvalidArgument, "get: no network instance")
	}
	var kinds []aft.Kind
	switch req.GetAft() {
	case spb.AFTType_ALL:
		kinds = []aft.Kind{aft.KindIPv4, aft.KindIPv6, aft.KindNextHopGroup, aft.KindNextHop}
	case spb.AFTType_IPV4:
		kinds = []aft.Kind{aft.KindIPv4}
	case spb.AFTType_IPV6:
		kinds = []aft.Kind{aft.KindIPv6}
	case spb.AFTType_NEXTHOP_GROUP:
		kinds = []aft.Kind{aft.KindNextHopGroup}
	case spb.AFTType_NEXTHOP:
		kinds = []aft.Kind{aft.KindNextHop}
	default:
		return status.Errorf(codes.Unimplemented, "get: AFT %s is not served", req.GetAft())
	}
	entries, err := s.snapshot(stream.Context(), kinds)
	if err != nil {
		return err
	}
	const perMsg = 1000
	for len(entries) > 0 {
		n := min(perMsg, len(entries))
		if err := stream.Send(&spb.GetResponse{Entry: entries[:n]}); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// snapshot reads the RIB's entries through the writer, which owns it.
// Each entry's FIB status is what the tree's state says.
func (s *Service) snapshot(ctx context.Context, kinds []aft.Kind) ([]*spb.AFTEntry, error) {
	done := make(chan []*spb.AFTEntry, 1)
	w := work{read: func(r *aft.RIB) {
		var out []*spb.AFTEntry
		for _, k := range kinds {
			r.Entries(k, func(e *aft.Entry) bool {
				pe := entryProto(e)
				pe.NetworkInstance = DefaultNetworkInstance
				pe.RibStatus = spb.AFTEntry_PROGRAMMED
				out = append(out, pe)
				return true
			})
		}
		done <- out
	}}
	if err := s.submit(ctx, w); err != nil {
		return nil, err
	}
	select {
	case out := <-done:
		s.fibStatus(out)
		return out, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// fibStatus fills each entry's FIB status from the tree's state.
func (s *Service) fibStatus(es []*spb.AFTEntry) {
	s.cfg.Store.Read(func(t *tree.Tree) error {
		for _, e := range es {
			if statusOf(t, keyOfProto(e)) == statusInstalled {
				e.FibStatus = spb.AFTEntry_PROGRAMMED
			} else {
				e.FibStatus = spb.AFTEntry_NOT_PROGRAMMED
			}
		}
		return nil
	})
}

// submit hands w to the writer.
func (s *Service) submit(ctx context.Context, w work) error {
	select {
	case s.work <- w:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Flush removes every entry of the default network instance (of every
// session) after the election check the request asks for.
func (s *Service) Flush(ctx context.Context, req *spb.FlushRequest) (*spb.FlushResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Auth.GRIBIWrite(ctx); err != nil {
		return nil, err
	}
	if err := s.postureAllowsWrite(); err != nil {
		return nil, err
	}
	switch ni := req.GetNetworkInstance().(type) {
	case *spb.FlushRequest_Name:
		if ni.Name != DefaultNetworkInstance {
			return nil, flushErr(codes.InvalidArgument, spb.FlushResponseError_INVALID_NETWORK_INSTANCE, "flush: unknown network instance %q", ni.Name)
		}
	case *spb.FlushRequest_All:
	default:
		return nil, flushErr(codes.InvalidArgument, spb.FlushResponseError_UNSPECIFIED_NETWORK_INSTANCE, "flush: no network instance")
	}
	if err := s.checkFlushElection(req); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	if err := s.submit(ctx, work{flush: done, from: ctx}); err != nil {
		return nil, err
	}
	select {
	case err := <-done:
		if err != nil {
			return nil, status.Errorf(codes.Internal, "flush: %v", err)
		}
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &spb.FlushResponse{Result: spb.FlushResponse_OK, Timestamp: timeNow().UnixNano()}, nil
}

func (s *Service) checkFlushElection(req *spb.FlushRequest) error {
	if req.GetOverride() != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := req.GetId()
	switch {
	case id == nil && s.elec.isZero():
		return nil
	case id == nil:
		return flushErr(codes.FailedPrecondition, spb.FlushResponseError_UNSPECIFIED_ELECTION_BEHAVIOR, "flush: a primary is elected: give an election id or override")
	case s.elec.isZero():
		return flushErr(codes.FailedPrecondition, spb.FlushResponseError_ELECTION_ID_IN_ALL_PRIMARY, "flush: election id given, but no primary is elected")
	}
	cand := u128(id)
	switch {
	case cand.isZero():
		return flushErr(codes.InvalidArgument, spb.FlushResponseError_INVALID_ELECTION_ID, "flush: zero is not an election id")
	case cand.less(s.elec):
		return flushErr(codes.FailedPrecondition, spb.FlushResponseError_NOT_PRIMARY, "flush: election id %s is below the primary's %s", cand, s.elec)
	}
	return nil
}

func flushErr(c codes.Code, why spb.FlushResponseError_Reason, format string, a ...any) error {
	st := status.Newf(c, format, a...)
	if d, err := st.WithDetails(&spb.FlushResponseError{Status: why}); err == nil {
		st = d
	}
	return st.Err()
}

func modifyErr(c codes.Code, why spb.ModifyRPCErrorDetails_Reason, format string, a ...any) error {
	st := status.Newf(c, format, a...)
	if d, err := st.WithDetails(&spb.ModifyRPCErrorDetails{Reason: why}); err == nil {
		st = d
	}
	return st.Err()
}

// ReasonPostureLockdown is the ErrorInfo reason (domain kedge) of a write
// refused because the posture level is 1.
const ReasonPostureLockdown = "POSTURE_LOCKDOWN"

// postureAllowsWrite refuses writes at posture level 1 (lockdown: every
// route change is frozen).
func (s *Service) postureAllowsWrite() error {
	var level uint8
	s.cfg.Store.Read(func(t *tree.Tree) error {
		level, _ = kedgetree.Of(t).Kedge().Posture().State().EffectiveLevel()
		return nil
	})
	if level != 1 {
		return nil
	}
	st := status.New(codes.FailedPrecondition, "gribi: posture level 1 (lockdown): route injection is refused")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonPostureLockdown, Domain: "kedge",
		Metadata: map[string]string{"level": "1"}}); err == nil {
		st = d
	}
	return st.Err()
}

// errClosed ends sessions whose work the stopped writer will never do.
var errClosed = errors.New("gribi service closed")
