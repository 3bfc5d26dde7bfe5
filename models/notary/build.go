package notary

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// MaxListedChanges is how many changed leaves a mutation artifact lists
// without payload hashing; the digest and the count still cover all of
// them. A 100,000-route commit would otherwise make a 60 MB artifact.
const MaxListedChanges = 1024

// Writer is who made a commit.
type Writer struct {
	Identity, Tier, Method string
}

// Change is one changed config leaf with its value before and after (an
// unset Before: the leaf was absent; Delete: it is absent now).
type Change struct {
	Path          string
	Delete        bool
	Before, After tree.Value
}

// Mutation is one committed config transaction.
type Mutation struct {
	Seq       uint64
	Time      time.Time
	Writer    Writer
	Level     uint8 // effective posture level at commit
	Changes   []Change
	Recovered bool // rebuilt from the store's log after a restart
	// Unannotated: the commit had no annotation, so Writer, Level and the
	// values before are unknown.
	Unannotated bool
}

// BuildMutation makes the NetworkMutationArtifact of a commit at a
// fidelity.
func BuildMutation(m Mutation, f Fidelity) *qmv1.NetworkMutationArtifact {
	b := NewMutationBuilder(m, len(m.Changes), f)
	var path, before []byte
	for _, c := range m.Changes {
		path = append(path[:0], c.Path...)
		before = AppendValue(before[:0], c.Before)
		b.Add(path, c.Delete, before, c.After)
	}
	return b.Artifact()
}

// ChangesDigest recomputes an artifact's changes_sha256 from plain
// changes, for verifiers holding the commit.
func ChangesDigest(cs []Change) []byte {
	d := newChangesDigest()
	for _, c := range cs {
		after := []byte(nil)
		if !c.Delete {
			after = ValueHash(c.After)
		}
		d.add(c.Path, c.Delete, ValueHash(c.Before), after)
	}
	return d.sum()
}

// Transit kinds, as the Shellstream layer names them.
const (
	TransitOpen  = "open"
	TransitGrant = "grant"
	TransitDeny  = "deny"
	TransitDrain = "drain"
	TransitClose = "close"
)

// TransitKind maps a transit kind to its proto enum (UNSPECIFIED when
// unknown).
func TransitKind(kind string) qmv1.TransitKind {
	switch kind {
	case TransitOpen:
		return qmv1.TransitKind_TRANSIT_KIND_OPEN
	case TransitGrant:
		return qmv1.TransitKind_TRANSIT_KIND_GRANT
	case TransitDeny:
		return qmv1.TransitKind_TRANSIT_KIND_DENY
	case TransitDrain:
		return qmv1.TransitKind_TRANSIT_KIND_DRAIN
	case TransitClose:
		return qmv1.TransitKind_TRANSIT_KIND_CLOSE
	}
	return qmv1.TransitKind_TRANSIT_KIND_UNSPECIFIED
}

// FrameHeader is one Shellstream frame's header.
type FrameHeader struct {
	Inbound       bool
	Type          string
	Seq           uint64
	Length        uint32
	Time          time.Time
	PayloadSHA256 []byte // the sender's hash of the payload, when it kept one
}

// Transit is one session boundary crossing.
type Transit struct {
	SessionID    string
	Kind         string // TransitOpen ... TransitClose
	Level        uint8  // the node's posture level at the transit
	SessionLevel uint8  // the level governing the session (stricter side)
	Time         time.Time
	PeerSPIFFEID string
	PeerNode     string
	PeerCluster  string
	Tier         string
	SessionType  string
	Reason       string
	Frames       []FrameHeader
}

// BuildTransit makes the SessionTransitArtifact of a transit at a
// fidelity: frame headers only with FrameHeaders, their payload hashes and
// the metadata hash only with PayloadHashing.
func BuildTransit(t Transit, f Fidelity) *qmv1.SessionTransitArtifact {
	a := &qmv1.SessionTransitArtifact{
		SessionId:             t.SessionID,
		Kind:                  TransitKind(t.Kind),
		PostureLevelAtTransit: uint32(t.Level),
		EffectiveSessionLevel: uint32(t.SessionLevel),
		TransitUnixNano:       unixNano(t.Time),
		PeerSpiffeId:          t.PeerSPIFFEID,
		PeerNode:              t.PeerNode,
		PeerCluster:           t.PeerCluster,
		Tier:                  t.Tier,
		SessionType:           t.SessionType,
		Reason:                t.Reason,
	}
	if f.FrameHeaders {
		for _, fh := range t.Frames {
			dir := qmv1.FrameDirection_FRAME_DIRECTION_OUTBOUND
			if fh.Inbound {
				dir = qmv1.FrameDirection_FRAME_DIRECTION_INBOUND
			}
			h := &qmv1.FrameHeader{Direction: dir, FrameType: fh.Type, Sequence: fh.Seq, Length: fh.Length, UnixNano: unixNano(fh.Time)}
			if f.PayloadHashing {
				h.PayloadSha256 = fh.PayloadSHA256
			}
			a.FrameHeaders = append(a.FrameHeaders, h)
		}
	}
	if f.PayloadHashing {
		a.MetadataSha256 = TransitDigest(a)
	}
	return a
}

// TransitDigest is SHA-256 over a transit's fields and frame headers,
// each length-prefixed in field order (metadata_sha256 itself excluded).
func TransitDigest(a *qmv1.SessionTransitArtifact) []byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(n uint64) { b = binary.AppendUvarint(b, n) }
	str(a.GetSessionId())
	num(uint64(a.GetKind()))
	num(uint64(a.GetPostureLevelAtTransit()))
	num(uint64(a.GetEffectiveSessionLevel()))
	num(uint64(a.GetTransitUnixNano()))
	for _, s := range []string{a.GetPeerSpiffeId(), a.GetPeerNode(), a.GetPeerCluster(), a.GetTier(), a.GetSessionType(), a.GetReason()} {
		str(s)
	}
	num(uint64(len(a.GetFrameHeaders())))
	for _, h := range a.GetFrameHeaders() {
		num(uint64(h.GetDirection()))
		str(h.GetFrameType())
		num(h.GetSequence())
		num(uint64(h.GetLength()))
		num(uint64(h.GetUnixNano()))
		str(string(h.GetPayloadSha256()))
	}
	s := sha256.Sum256(b)
	return s[:]
}

// Forensic is a PostureForensicSnapshot as the posture engine's forensic
// step produced it.
type Forensic struct {
	Seq          uint64 // the posture transition
	From, To     uint8
	Time         time.Time
	Document     []byte // JSON with keys mesh, routes, sessions
	KernelRoutes []string
}

// BuildForensic makes the PostureForensicSnapshot artifact, counting the
// peers, routes and sessions the document holds.
func BuildForensic(s Forensic) *qmv1.PostureForensicSnapshot {
	sum := sha256.Sum256(s.Document)
	a := &qmv1.PostureForensicSnapshot{
		TransitionSequence: s.Seq,
		FromLevel:          uint32(s.From),
		ToLevel:            uint32(s.To),
		TakenUnixNano:      unixNano(s.Time),
		Document:           s.Document,
		DocumentSha256:     sum[:],
		KernelRoutes:       s.KernelRoutes,
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(s.Document, &doc) == nil {
		a.Peers = countList(doc, "mesh", "peers", "peer")
		a.Routes = countList(doc, "routes", "route")
		a.Sessions = countList(doc, "sessions", "session")
	}
	return a
}

// countList follows object keys (module prefixes ignored) down to a JSON
// array and returns its length, 0 when anything is missing.
func countList(doc map[string]json.RawMessage, keys ...string) uint32 {
	cur := doc
	for i, k := range keys {
		raw, ok := lookup(cur, k)
		if !ok {
			return 0
		}
		if i == len(keys)-1 {
			var arr []json.RawMessage
			if json.Unmarshal(raw, &arr) != nil {
				return 0
			}
			return uint32(len(arr))
		}
		cur = nil
		if json.Unmarshal(raw, &cur) != nil {
			return 0
		}
	}
	return 0
}

func lookup(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if _, name, ok := strings.Cut(k, ":"); ok && name == key {
			return v, true
		}
	}
	return nil, false
}

// Step is one step of a posture transition.
type Step struct {
	Index    int
	Name     string
	Started  time.Time
	Duration time.Duration
	Result   string
	Err      string
}

// Transition is a posture transition's report.
type Transition struct {
	Seq      uint64
	From, To uint8
	Source   string
	Started  time.Time
	Duration time.Duration
	Result   string
	Resume   bool
	Steps    []Step
}

// BuildTransition makes the PostureTransitionArtifact of a transition.
func BuildTransition(t Transition) *qmv1.PostureTransitionArtifact {
	a := &qmv1.PostureTransitionArtifact{
		Sequence:        t.Seq,
		FromLevel:       uint32(t.From),
		ToLevel:         uint32(t.To),
		Source:          t.Source,
		StartedUnixNano: unixNano(t.Started),
		DurationNanos:   int64(t.Duration),
		Result:          t.Result,
		Resume:          t.Resume,
	}
	for _, s := range t.Steps {
		a.Steps = append(a.Steps, &qmv1.PostureStep{Index: uint32(s.Index), Name: s.Name,
			StartedUnixNano: unixNano(s.Started), DurationNanos: int64(s.Duration), Result: s.Result, Error: s.Err})
	}
	return a
}

// Type returns the artifact type an entry carries: a mutation artifact
// of a device push is ARTIFACT_TYPE_DEVICE_PUSH.
func Type(e *qmv1.LogEntry) qmv1.ArtifactType {
	switch a := e.GetArtifact().(type) {
	case *qmv1.LogEntry_NetworkMutation:
		if a.NetworkMutation.GetDevicePush() != nil {
			return qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH
		}
		return qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION
	case *qmv1.LogEntry_SessionTransit:
		return qmv1.ArtifactType_ARTIFACT_TYPE_SESSION_TRANSIT
	case *qmv1.LogEntry_ForensicSnapshot:
		return qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_FORENSIC_SNAPSHOT
	case *qmv1.LogEntry_PostureTransition:
		return qmv1.ArtifactType_ARTIFACT_TYPE_POSTURE_TRANSITION
	}
	return qmv1.ArtifactType_ARTIFACT_TYPE_UNSPECIFIED
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
