package shellstream

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
)

// hello is what the handshake learned so far.
type hello struct {
	id            string
	typ           session.Type
	pbType        pb.SessionType
	node, cluster string
	initiator     uint8
	local, eff    uint8
	gen           uint64
	rules         session.Rules
	nonce         []byte
	sat           string
	peer, tier    string
	caps          []session.Capability
}

// denial is a handshake refusal.
type denial struct {
	reason pb.DenyReason
	text   string
}

func (d *denial) Error() string { return d.text }

func deny(r pb.DenyReason, format string, args ...any) *denial {
	return &denial{reason: r, text: fmt.Sprintf(format, args...)}
}

// handshake runs ATTEST-INIT .. GRANT. It returns the live session, or nil
// after it queued a DENY (or the stream ended) with the handler's error.
func (c *conn) handshake() (*live, error) {
	timeout := make(chan struct{})
	stopTimer := c.s.clock.AfterFunc(c.s.opts.HandshakeTimeout, func() { close(timeout) })
	defer stopTimer()
	h := &hello{id: newSessionID()}
	l, err := c.attest(h, timeout)
	var d *denial
	switch {
	case err == nil:
		return l, nil
	case errors.As(err, &d):
		c.refuse(h, d)
		return nil, nil
	}
	return nil, err
}

// next waits for the next frame of the handshake.
func (c *conn) next(timeout <-chan struct{}) (*pb.SessionRequest, error) {
	select {
	case f := <-c.in:
		if errors.Is(f.err, errProtocol) {
			return nil, deny(pb.DenyReason_DENY_REASON_BAD_REQUEST, "%v", f.err)
		}
		return f.req, f.err
	case <-timeout:
		return nil, deny(pb.DenyReason_DENY_REASON_TIMEOUT, "handshake not completed within %s", c.s.opts.HandshakeTimeout)
	case <-c.stream.Context().Done():
		return nil, c.stream.Context().Err()
	case <-c.abort:
		return nil, errStuck
	}
}

func (c *conn) attest(h *hello, timeout <-chan struct{}) (*live, error) {
	req, err := c.next(timeout)
	if err != nil {
		return nil, err
	}
	ai := req.GetAttestInit()
	if ai == nil {
		return nil, deny(pb.DenyReason_DENY_REASON_BAD_REQUEST, "expected attest-init, got %s", requestKind(req))
	}
	if err := c.readInit(h, ai); err != nil {
		return nil, err
	}
	local, eff, gen, rules, ok := c.s.decide(h.initiator)
	if !ok {
		return nil, deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "the node has not applied its posture level yet")
	}
	h.local, h.eff, h.gen, h.rules = local, eff, gen, rules
	c.frames.setLevel(eff)
	c.s.emit(c.event(h, EventOpen, ""))
	if d := rules.CheckOrigin(c.local); d != session.DenyNone {
		return nil, deny(pb.DenyReason_DENY_REASON_POSTURE, "posture level %d admits only loopback sessions for console management; ATTEST-INIT from %s refused", eff, c.addr)
	}
	if !c.s.nonces.remember(h.nonce, c.s.clock.Now()) {
		return nil, deny(pb.DenyReason_DENY_REASON_REPLAY, "nonce replayed")
	}

	// Verify the SAT while the initiator signs the challenge: at levels 3
	// and below this overlaps the agent round trip with the client's.
	vctx, cancel := context.WithCancel(c.stream.Context())
	defer cancel()
	type result struct {
		v   verifiedSAT
		err error
	}
	verified := make(chan result, 1)
	go func() {
		v, err := c.s.sat.verify(vctx, h.sat, rules.Verification)
		verified <- result{v, err}
	}()
	challenge := randomBytes(32)
	c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Challenge{Challenge: &pb.Challenge{Challenge: challenge, ServerId: c.s.opts.ServerID}}})

	// ATTEST-VERIFY and the SAT's verdict, in either order; a failed
	// verdict is given as soon as it is known.
	var av *pb.AttestVerify
	var res *result
	for av == nil || res == nil {
		var inCh <-chan inFrame
		if av == nil {
			inCh = c.in
		}
		var vCh <-chan result
		if res == nil {
			vCh = verified
		}
		select {
		case r := <-vCh:
			if r.err != nil {
				return nil, satDenial(r.err)
			}
			res = &r
		case f := <-inCh:
			if err := c.handshakeFrame(f, &av); err != nil {
				return nil, err
			}
		case <-timeout:
			return nil, deny(pb.DenyReason_DENY_REASON_TIMEOUT, "handshake not completed within %s", c.s.opts.HandshakeTimeout)
		case <-c.stream.Context().Done():
			return nil, c.stream.Context().Err()
		case <-c.abort:
			return nil, errStuck
		}
	}
	if err := c.checkProof(h, av, challenge, res.v); err != nil {
		return nil, err
	}
	tier, ok := c.s.opts.Tiers.SPIFFETier(h.peer)
	if !ok || !session.ValidTier(tier) {
		return nil, deny(pb.DenyReason_DENY_REASON_UNAUTHORIZED, "%s has no tier in the policy", h.peer)
	}
	h.tier = tier
	switch d, caps := rules.Admit(h.typ, tier, c.local); d {
	case session.DenyNone:
		h.caps = caps
	case session.DenyType:
		return nil, deny(pb.DenyReason_DENY_REASON_POSTURE, "posture level %d admits only %s sessions, not %s", eff, joinTypes(rules.Allowed), h.typ)
	case session.DenyRemote:
		return nil, deny(pb.DenyReason_DENY_REASON_POSTURE, "posture level %d admits only loopback sessions", eff)
	default:
		return nil, deny(pb.DenyReason_DENY_REASON_UNAUTHORIZED, "tier %s is granted nothing", tier)
	}
	return c.grant(h, res.v)
}

// handshakeFrame takes a frame that arrived while the SAT was being
// verified: only ATTEST-VERIFY is expected.
func (c *conn) handshakeFrame(f inFrame, av **pb.AttestVerify) error {
	if f.err != nil {
		if errors.Is(f.err, errProtocol) {
			return deny(pb.DenyReason_DENY_REASON_BAD_REQUEST, "%v", f.err)
		}
		return f.err
	}
	v := f.req.GetAttestVerify()
	if v == nil {
		return deny(pb.DenyReason_DENY_REASON_BAD_REQUEST, "expected attest-verify, got %s", requestKind(f.req))
	}
	*av = v
	return nil
}

func satDenial(err error) error {
	if errors.Is(err, ErrAgentUnavailable) {
		return deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "%v", err)
	}
	return deny(pb.DenyReason_DENY_REASON_INVALID_SAT, "%v", err)
}

// readInit checks ATTEST-INIT's fields.
func (c *conn) readInit(h *hello, ai *pb.AttestInit) error {
	bad := func(format string, args ...any) error {
		return deny(pb.DenyReason_DENY_REASON_BAD_REQUEST, format, args...)
	}
	switch {
	case ai.GetSat() == "":
		return bad("attest-init without a sat")
	case len(ai.GetSat()) > maxSATBytes:
		return bad("sat of %d bytes exceeds %d", len(ai.GetSat()), maxSATBytes)
	case len(ai.GetNonce()) < 16 || len(ai.GetNonce()) > 64:
		return bad("nonce of %d bytes, want 16..64", len(ai.GetNonce()))
	case !accord.Valid(uint8(min(ai.GetPostureLevel(), 255))):
		return bad("posture level %d out of range 1..5", ai.GetPostureLevel())
	case len(ai.GetNode()) > maxNameBytes || len(ai.GetCluster()) > maxNameBytes:
		return bad("node or cluster name longer than %d bytes", maxNameBytes)
	}
	typ, ok := typeFromProto(ai.GetSessionType())
	if !ok {
		return bad("session type %s is not one of management, incident, monitoring, operator, routine", ai.GetSessionType())
	}
	h.typ, h.pbType = typ, ai.GetSessionType()
	h.node, h.cluster = ai.GetNode(), ai.GetCluster()
	h.initiator = uint8(ai.GetPostureLevel())
	h.nonce = ai.GetNonce()
	h.sat = ai.GetSat()
	return nil
}

// checkProof verifies ATTEST-VERIFY: the SVID chain against the trust
// bundle, its SPIFFE ID against the SAT's subject, and the signature over
// the transcript.
func (c *conn) checkProof(h *hello, av *pb.AttestVerify, challenge []byte, sat verifiedSAT) error {
	bad := func(format string, args ...any) error {
		return deny(pb.DenyReason_DENY_REASON_INVALID_PROOF, format, args...)
	}
	chain := av.GetSvidChain()
	if len(chain) == 0 || len(chain) > 8 {
		return bad("svid chain of %d certificates, want 1..8", len(chain))
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for i, der := range chain {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return bad("parse svid certificate %d: %v", i, err)
		}
		certs = append(certs, cert)
	}
	if !bundlesReady(c.s.opts.Bundles) {
		return deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "no trust bundles from the Workload API yet to verify the svid")
	}
	id, _, err := x509svid.Verify(certs, c.s.opts.Bundles, x509svid.WithTime(c.s.clock.Now()))
	if err != nil {
		return bad("verify svid: %v", err)
	}
	if id != sat.id {
		return bad("svid %s is not the sat's subject %s", id, sat.id)
	}
	digest := Transcript(h.nonce, challenge, h.pbType, c.s.opts.ServerID, h.sat)
	if err := verifyTranscript(certs[0].PublicKey, av.GetAlgorithm(), digest, av.GetSignature()); err != nil {
		return bad("%v", err)
	}
	h.peer = id.String()
	return nil
}

// grant connects the session's endpoint, registers the session and sends
// GRANT.
func (c *conn) grant(h *hello, v verifiedSAT) (*live, error) {
	ep, ok := c.s.opts.Endpoints[h.typ]
	if !ok {
		return nil, deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "no endpoint serves %s sessions on this node", h.typ)
	}
	now := c.s.clock.Now()
	l := newLive(c, h, v, now)
	conn, err := ep.dial(c.stream.Context(), c.s.opts.HandshakeTimeout)
	if err != nil {
		return nil, deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "connect %s endpoint: %v", h.typ, err)
	}
	if err := writePreamble(conn, l, c.s.opts.SendTimeout); err != nil {
		conn.Close()
		return nil, deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "connect %s endpoint: %v", h.typ, err)
	}
	l.ep = conn
	if err := c.s.register(l, h.gen); err != nil {
		conn.Close()
		return nil, deny(pb.DenyReason_DENY_REASON_UNAVAILABLE, "%v", err)
	}
	l.armDeadline()
	lvl := slog.LevelDebug
	if h.rules.LogAll {
		lvl = slog.LevelInfo // level 4 and stricter: every new session, not sampled
	}
	c.s.log.Log(c.stream.Context(), lvl, "shellstream session granted", "session", h.id, "peer", h.peer, "tier", h.tier,
		"type", h.typ, "node", h.node, "cluster", h.cluster, "from", c.addr, "effective_level", h.eff,
		"verification", h.rules.Verification, "capabilities", h.caps)
	c.s.emit(c.event(h, EventGrant, ""))
	c.s.state.touch(l)
	// GRANT goes last: once the initiator has it, the session is logged,
	// recorded and in the state writer's hands.
	c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Grant{Grant: &pb.Grant{
		SessionId: h.id, Capabilities: capsToProto(h.caps), EffectiveLevel: uint32(h.eff),
		Deadline: timestamppb.New(l.deadline), Verification: verificationToProto(h.rules.Verification)}}})
	return l, nil
}

// refuse sends DENY, logs and records it.
func (c *conn) refuse(h *hello, d *denial) {
	c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Deny{Deny: &pb.Deny{Reason: d.reason, Text: d.text, EffectiveLevel: uint32(h.eff)}}})
	c.s.log.Info("shellstream handshake denied", "session", h.id, "reason", d.reason.String(), "text", d.text,
		"peer", h.peer, "from", c.addr, "type", h.typ, "effective_level", h.eff)
	c.s.emit(c.event(h, EventDeny, strings.TrimPrefix(d.reason.String(), "DENY_REASON_")+": "+d.text))
}

// event builds a transit event of the handshake.
func (c *conn) event(h *hello, kind EventKind, reason string) *Event {
	hdrs, dropped := c.frames.take(h.eff)
	return &Event{SessionID: h.id, Kind: kind, Peer: h.peer, Node: h.node, Cluster: h.cluster, Tier: h.tier,
		Type: string(h.typ), Critical: h.typ.Critical(), PostureLevel: h.eff, LocalLevel: h.local,
		InitiatorLevel: h.initiator, Time: c.s.clock.Now(), Reason: reason, Capabilities: capsToStrings(h.caps),
		FrameHeaders: hdrs, FrameHeadersDropped: dropped}
}

func joinTypes(ts []session.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

var protoTypes = map[pb.SessionType]session.Type{
	pb.SessionType_SESSION_TYPE_MANAGEMENT: session.Management,
	pb.SessionType_SESSION_TYPE_INCIDENT:   session.Incident,
	pb.SessionType_SESSION_TYPE_MONITORING: session.Monitoring,
	pb.SessionType_SESSION_TYPE_OPERATOR:   session.Operator,
	pb.SessionType_SESSION_TYPE_ROUTINE:    session.Routine,
}

func typeFromProto(t pb.SessionType) (session.Type, bool) {
	s, ok := protoTypes[t]
	return s, ok
}

// TypeToProto maps a session type to its wire enum.
func TypeToProto(t session.Type) pb.SessionType {
	for p, s := range protoTypes {
		if s == t {
			return p
		}
	}
	return pb.SessionType_SESSION_TYPE_UNSPECIFIED
}

func capsToProto(cs []session.Capability) []pb.Capability {
	out := make([]pb.Capability, 0, len(cs))
	for _, c := range cs {
		switch c {
		case session.Observe:
			out = append(out, pb.Capability_CAPABILITY_OBSERVE)
		case session.Execute:
			out = append(out, pb.Capability_CAPABILITY_EXECUTE)
		case session.Propose:
			out = append(out, pb.Capability_CAPABILITY_PROPOSE)
		}
	}
	return out
}

func capsToStrings(cs []session.Capability) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func verificationToProto(v session.Verification) pb.VerificationMode {
	if v == session.Cached {
		return pb.VerificationMode_VERIFICATION_MODE_CACHED
	}
	return pb.VerificationMode_VERIFICATION_MODE_REVERIFIED
}
