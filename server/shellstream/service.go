package shellstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
)

// Options configure a Service. Zero durations and sizes take the
// defaults below.
type Options struct {
	Logger *slog.Logger
	Clock  Clock
	// WorkloadAPI re-verifies SATs (levels 3..1); Bundles validate them
	// locally and check SVID chains. Without them every handshake that
	// needs them is denied as unavailable.
	WorkloadAPI WorkloadAPI
	Bundles     Bundles
	Tiers       Tiers
	// Accords gives the accord of levels below the node's own, for
	// sessions whose initiator is stricter; nil means the built-in ones.
	Accords  Accords
	State    StateWriter // nil: no /kedge/sessions
	Recorder Recorder    // nil: no transit events
	// ServerID is this server's identity: the audience a SAT must name.
	ServerID string
	// Endpoints are where each session type's DATA goes.
	Endpoints map[session.Type]Endpoint

	// HandshakeTimeout bounds ATTEST-INIT to GRANT.
	HandshakeTimeout time.Duration
	// DrainTimeout is the grace a drained session gets to finish.
	DrainTimeout time.Duration
	// SendTimeout ends a session whose client has not taken a frame for
	// this long (it stopped reading).
	SendTimeout time.Duration
	// Lifetime is the longest a session may live (GRANT's deadline).
	Lifetime time.Duration
	// MaxFrameBytes bounds an incoming frame.
	MaxFrameBytes int
	// ReplayWindow is how long ATTEST-INIT nonces are remembered.
	ReplayWindow time.Duration
	// RetainClosed and MaxClosed bound how long and how many closed
	// sessions stay in /kedge/sessions.
	RetainClosed time.Duration
	MaxClosed    int
	// StateInterval is how often changed counters are written.
	StateInterval time.Duration
	// EventQueue bounds the transit events waiting for the Recorder.
	EventQueue int
}

// Defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultSendTimeout      = 15 * time.Second
	DefaultLifetime         = 12 * time.Hour
	DefaultMaxFrameBytes    = 256 << 10
	DefaultReplayWindow     = 10 * time.Minute
	DefaultRetainClosed     = 10 * time.Minute
	DefaultMaxClosed        = 1000
	DefaultStateInterval    = time.Second
	DefaultEventQueue       = 1 << 14

	maxSATBytes     = 16 << 10
	maxNameBytes    = 253
	dataChunk       = 32 << 10
	maxNonces       = 1 << 16
	maxCachedTokens = 1 << 16
	maxFrameHeaders = 1024
)

func (o *Options) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&o.DrainTimeout, DefaultDrainTimeout)
	def(&o.SendTimeout, DefaultSendTimeout)
	def(&o.Lifetime, DefaultLifetime)
	def(&o.ReplayWindow, DefaultReplayWindow)
	def(&o.RetainClosed, DefaultRetainClosed)
	def(&o.StateInterval, DefaultStateInterval)
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.MaxClosed <= 0 {
		o.MaxClosed = DefaultMaxClosed
	}
	if o.EventQueue <= 0 {
		o.EventQueue = DefaultEventQueue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = RealClock
	}
}

// Service is the Shellstream server of one node. Create it with New,
// register it on gRPC servers, Start it, add its Step to the posture plan,
// and Close it.
type Service struct {
	pb.UnimplementedShellstreamServiceServer

	opts   Options
	log    *slog.Logger
	clock  Clock
	sat    *satVerifier
	nonces *nonceLog

	mu sync.Mutex
	// level is the node's level as the handshake step last applied it (0:
	// not yet: handshakes are refused as unavailable); gen counts applies
	// so a handshake decided under an older level can tell.
	level   uint8
	gen     uint64
	rules   [accord.MaxLevel + 1]session.Rules
	live    map[string]*live
	closing bool

	wg     sync.WaitGroup
	cancel context.CancelFunc
	events chan *Event
	state  *stateBook

	eventsDropped atomic.Uint64
}

// New checks opts and returns a Service that refuses handshakes until its
// step first applies a level.
func New(opts Options) (*Service, error) {
	opts.fill()
	if opts.ServerID == "" {
		return nil, errors.New("create shellstream service: no server id (the SAT audience)")
	}
	if opts.Tiers == nil {
		return nil, errors.New("create shellstream service: no tier policy")
	}
	s := &Service{
		opts:   opts,
		log:    opts.Logger,
		clock:  opts.Clock,
		sat:    newSATVerifier(opts.WorkloadAPI, opts.Bundles, opts.ServerID, opts.Clock, maxCachedTokens),
		nonces: newNonceLog(opts.ReplayWindow, maxNonces),
		live:   map[string]*live{},
		events: make(chan *Event, opts.EventQueue),
	}
	s.state = newStateBook(s)
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l) // l is valid
		s.rules[l] = session.RulesFor(a)
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g grpc.ServiceRegistrar) { pb.RegisterShellstreamServiceServer(g, s) }

// FullMethod is the Session RPC's full method name (for interceptors
// that must let Shellstream do its own authentication).
const FullMethod = "/kedge.shellstream.v1.ShellstreamService/Session"

// Start runs the state writer and the event dispatcher until Close.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.dispatch(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.state.run(ctx)
	}()
}

// Close ends every live session (CLOSE with reason shutdown), writes their
// final state and stops the service's goroutines.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closing = true
	all := make([]*live, 0, len(s.live))
	for _, l := range s.live {
		all = append(all, l)
	}
	s.mu.Unlock()
	for _, l := range all {
		l.terminate(pb.CloseReason_CLOSE_REASON_SHUTDOWN, "the node is shutting down", true)
	}
	for _, l := range all {
		<-l.done
	}
	if s.cancel != nil {
		s.state.flush(context.Background())
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

// Stats returns the SAT verifier's counters.
func (s *Service) Stats() CacheStats {
	return CacheStats{AgentCalls: s.sat.agentCalls.Load(), CacheHits: s.sat.cacheHits.Load(), LocalValidations: s.sat.localValidations.Load()}
}

// Live returns the state of the live sessions.
func (s *Service) Live() []State {
	s.mu.Lock()
	all := make([]*live, 0, len(s.live))
	for _, l := range s.live {
		all = append(all, l)
	}
	s.mu.Unlock()
	out := make([]State, 0, len(all))
	for _, l := range all {
		out = append(out, l.snapshot())
	}
	return out
}

// snapshot returns the node's level, the apply generation and the rules
// of a session announcing initiator as its level.
func (s *Service) decide(initiator uint8) (local, eff uint8, gen uint64, r session.Rules, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.level == 0 || s.closing {
		return 0, 0, 0, session.Rules{}, false
	}
	eff = session.Effective(s.level, initiator)
	return s.level, eff, s.gen, s.rules[eff], true
}

// register adds a granted session unless the level changed since the
// handshake decided (gen) or the service is closing.
func (s *Service) register(l *live, gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("the node is shutting down")
	}
	if s.gen != gen {
		return errors.New("the posture level changed during the handshake; retry")
	}
	s.live[l.id] = l
	return nil
}

func (s *Service) unregister(l *live) {
	s.mu.Lock()
	delete(s.live, l.id)
	s.mu.Unlock()
}

// rulesFor returns the rules of a level (under s.mu by the caller or not:
// rules are replaced whole under s.mu, so callers that need consistency
// with level take s.mu).
func (s *Service) rulesFor(level uint8) session.Rules {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rules[level]
}

// emit queues a transit event without blocking.
func (s *Service) emit(e *Event) {
	if s.opts.Recorder == nil {
		return
	}
	select {
	case s.events <- e:
	default:
		if n := s.eventsDropped.Add(1); n&(n-1) == 0 { // log at powers of two
			s.log.Warn("shellstream transit recorder behind; events dropped", "dropped", n)
		}
	}
}

func (s *Service) dispatch(ctx context.Context) {
	for {
		select {
		case e := <-s.events:
			s.opts.Recorder.Transit(*e)
		case <-ctx.Done():
			for {
				select {
				case e := <-s.events:
					s.opts.Recorder.Transit(*e)
				default:
					return
				}
			}
		}
	}
}

// EventsDropped counts transit events the recorder was too slow for.
func (s *Service) EventsDropped() uint64 { return s.eventsDropped.Load() }

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24+: it crashes the program instead)
	return hex.EncodeToString(b[:])
}
