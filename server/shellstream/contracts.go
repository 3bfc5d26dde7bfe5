package shellstream

import (
	"context"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/guildhouse-co/kedge/models/accord"
)

// WorkloadAPI is the SPIRE agent's Workload API as the re-verifying
// handshake uses it (*workloadapi.Client fits). ValidateJWTSVID returns an
// error for a token the agent refuses; a gRPC Unavailable or
// DeadlineExceeded status means the agent could not be asked.
type WorkloadAPI interface {
	ValidateJWTSVID(ctx context.Context, token, audience string) (*jwtsvid.SVID, error)
}

// Bundles are the trust bundles the Workload API streams
// (*workloadapi.BundleSource fits). They must be safe for concurrent use
// and must not block.
type Bundles interface {
	jwtbundle.Source
	x509bundle.Source
}

// Readiness is implemented by Bundles that can be empty for a while (the
// agent not reached yet): handshakes are then denied as unavailable, not
// as carrying an invalid SAT or proof.
type Readiness interface {
	Ready() bool
}

func bundlesReady(b Bundles) bool {
	if b == nil {
		return false
	}
	r, ok := b.(Readiness)
	return !ok || r.Ready()
}

// Tiers maps a verified SPIFFE ID to a tier through the same policy file
// as gNMI identities (*auth.Policy, through a small adapter).
type Tiers interface {
	// SPIFFETier returns the tier (a kt:tier name) or false when the
	// policy gives the ID none.
	SPIFFETier(id string) (string, bool)
}

// Accords returns the effective accord of a level, operator overrides
// included. It is called from the posture step, never from a handshake.
type Accords interface {
	Accord(level uint8) (accord.Accord, error)
}

// Clock is the service's time: session deadlines, drain timeouts, the
// token cache, handshake and send timeouts, retention of closed sessions.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d; stop cancels it and
	// reports whether it did so before f ran.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// StateWriter publishes session state (/kedge/sessions). put carries full
// entries to create or replace; del the ids of entries to remove. It is
// called from one goroutine at a time.
type StateWriter interface {
	WriteSessions(ctx context.Context, put []State, del []string) error
}

// State is one session as /kedge/sessions/session/state shows it.
type State struct {
	ID                 string
	Peer               string // SPIFFE ID
	Node, Cluster      string
	Local              bool
	Tier               string
	Type               string
	Critical           bool
	Capabilities       []string
	Verification       string
	InitiatorPosture   uint8
	PostureAtHandshake uint8
	EffectivePosture   uint8
	Status             string // active, draining, closed
	Started            time.Time
	DrainDeadline      time.Time // zero unless draining
	Closed             time.Time // zero unless closed
	CloseReason        string
	BytesIn, BytesOut  uint64
	FramesIn           uint64
	FramesOut          uint64
}

// Session statuses (the YANG enum).
const (
	StatusActive   = "active"
	StatusDraining = "draining"
	StatusClosed   = "closed"
)

// Recorder receives session transits (for the notary). Transit is called
// from one dispatcher goroutine, in order; it should return quickly. The
// handshake never waits for it: events go through a bounded queue, and
// when the recorder falls that far behind, events are counted as dropped
// and logged rather than delaying a session.
type Recorder interface {
	Transit(Event)
}

// EventKind is the boundary a session crossed.
type EventKind string

// Event kinds.
const (
	EventOpen  EventKind = "open"  // ATTEST-INIT accepted for verification
	EventGrant EventKind = "grant" // GRANT sent
	EventDeny  EventKind = "deny"  // DENY sent
	EventDrain EventKind = "drain" // DRAIN sent
	EventClose EventKind = "close" // the session ended
)

// Event is one session transit.
type Event struct {
	SessionID string
	Kind      EventKind
	// Peer is the verified SPIFFE ID ("" before ATTEST-VERIFY succeeded).
	Peer          string
	Node, Cluster string // as the initiator announced them
	Tier          string // "" before the identity was mapped
	Type          string
	Critical      bool
	// PostureLevel is the level governing the session at the transit (the
	// seed's posture_level_at_transit); LocalLevel and InitiatorLevel are
	// the two it is the minimum of.
	PostureLevel   uint8
	LocalLevel     uint8
	InitiatorLevel uint8
	Time           time.Time
	Reason         string
	Capabilities   []string
	// FrameHeaders are the frames the session exchanged since its last
	// event, kept while it is governed by level 1 (the seed: "Session
	// metadata includes full Shellstream frame headers").
	FrameHeaders []FrameHeader
	// FrameHeadersDropped counts headers beyond the per-event cap.
	FrameHeadersDropped uint64
}

// FrameHeader is a frame's metadata, never its payload.
type FrameHeader struct {
	Inbound      bool // from the initiator
	Seq          uint64
	Kind         string // attest-init, challenge, ..., data, close
	PayloadBytes int
	Time         time.Time
	// PayloadSHA256 is the SHA-256 of a DATA frame's payload (the payload
	// itself is never kept).
	PayloadSHA256 []byte
}
