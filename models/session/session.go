// Package session holds the Shellstream session rules as data: for a
// posture accord, how a handshake's SAT is verified (cache or re-verify),
// whether every new session is logged, which session types and origins are
// admitted, which capabilities a tier is granted, and what happens to a
// live session when its effective level changes (keep, drain gracefully,
// terminate). The rules read the accord's handshake mode and allowed
// session types, so an operator's accord override changes them too. It
// is pure: no I/O, no clocks; the tables are golden-tested.
package session

import (
	"fmt"
	"slices"

	"github.com/guildhouse-co/kedge/models/accord"
)

// Type is what a session is for. The names are the YANG enum of
// /kedge/sessions/session/state/type and the accords'
// allowed-session-types entries.
type Type string

// Session types. Management, incident response and (health) monitoring are
// the seed's critical types.
const (
	Management Type = accord.SessionManagement
	Incident   Type = accord.SessionIncident
	Monitoring Type = accord.SessionMonitoring
	Operator   Type = accord.SessionOperator
	Routine    Type = accord.SessionRoutine
)

// Types lists every session type, critical ones first.
var Types = []Type{Management, Incident, Monitoring, Operator, Routine}

// ParseType checks that s names a session type.
func ParseType(s string) (Type, error) {
	if slices.Contains(Types, Type(s)) {
		return Type(s), nil
	}
	return "", fmt.Errorf("parse session type %q: want one of management, incident, monitoring, operator, routine", s)
}

// Critical reports whether sessions of this type survive level 2: the
// seed's "critical session types (management, incident response, health
// monitoring)".
func (t Type) Critical() bool { return t == Management || t == Incident || t == Monitoring }

// Capability is something a session may do on the node.
type Capability string

// Capabilities, weakest first.
const (
	Observe Capability = "observe"
	Execute Capability = "execute"
	Propose Capability = "propose"
)

// Tiers, highest first (the kt:tier enum).
var tiers = []string{accord.TierMaster, accord.TierSiteOwner, accord.TierOperator, accord.TierObserver}

// ValidTier reports whether tier is a tier.
func ValidTier(tier string) bool { return slices.Contains(tiers, tier) }

// FullGrant is a tier's capabilities where the accord narrows nothing
// (levels 5 and 4): an observer only observes; every other tier may also
// execute and propose.
func FullGrant(tier string) []Capability {
	switch tier {
	case accord.TierMaster, accord.TierSiteOwner, accord.TierOperator:
		return []Capability{Observe, Execute, Propose}
	case accord.TierObserver:
		return []Capability{Observe}
	}
	return nil
}

// Verification is how a handshake's SAT is checked.
type Verification string

// Verification modes.
const (
	// Cached: a token validated before (against the JWT bundles the
	// Workload API streams) is taken from the cache until it expires.
	Cached Verification = "cached"
	// Reverified: every handshake asks the SPIRE agent (ValidateJWTSVID).
	Reverified Verification = "reverified"
)

// Rules are the handshake rules of one accord.
type Rules struct {
	Level        uint8
	Verification Verification
	// LogAll: every new session is logged, not sampled (level 4).
	LogAll bool
	// NarrowBelowMaster: PROPOSE is revoked for tiers below master.
	NarrowBelowMaster bool
	// LocalOnly: only loopback sessions (unix socket, 127.0.0.1, ::1).
	LocalOnly bool
	// Abrupt: sessions the level no longer admits are terminated at once
	// (DRAIN with an immediate deadline, then CLOSE) rather than drained
	// with a grace period. The seed: "Only level 2+ escalation does
	// abrupt termination of non-critical sessions".
	Abrupt bool
	// Allowed are the session types the level admits.
	Allowed []Type
}

// RulesFor derives the handshake rules from an accord's handshake mode
// and allowed session types. An unknown mode is treated as the strictest
// (local-only) rather than the most relaxed.
func RulesFor(a accord.Accord) Rules {
	r := Rules{Level: a.Level}
	for _, s := range a.AllowedSessionTypes {
		if t, err := ParseType(s); err == nil {
			r.Allowed = append(r.Allowed, t)
		}
	}
	switch a.Handshake {
	case accord.HandshakeCache:
		r.Verification = Cached
	case accord.HandshakeCacheLogAll:
		r.Verification, r.LogAll = Cached, true
	case accord.HandshakeReverify:
		r.Verification, r.LogAll, r.NarrowBelowMaster = Reverified, true, true
	case accord.HandshakeCriticalOnly:
		r.Verification, r.LogAll, r.NarrowBelowMaster, r.Abrupt = Reverified, true, true, true
	default: // local-only, or a mode this build does not know
		r.Verification, r.LogAll, r.NarrowBelowMaster, r.Abrupt, r.LocalOnly = Reverified, true, true, true, true
	}
	return r
}

// Grant returns the capabilities tier is granted under these rules.
func (r Rules) Grant(tier string) []Capability {
	caps := FullGrant(tier)
	if r.NarrowBelowMaster && tier != accord.TierMaster {
		caps = slices.DeleteFunc(caps, func(c Capability) bool { return c == Propose })
	}
	return caps
}

// Denial says why a session is refused; Stage says at which frame.
type Denial string

// Denials.
const (
	// DenyNone: admitted.
	DenyNone Denial = ""
	// DenyRemote: the level admits only loopback sessions; refused at
	// ATTEST-INIT.
	DenyRemote Denial = "remote"
	// DenyType: the level does not admit the session type; refused at
	// ATTEST-VERIFY with the posture-level reason.
	DenyType Denial = "type"
	// DenyTier: the tier has no capabilities (not a tier).
	DenyTier Denial = "tier"
)

// Stage is the handshake frame a decision is made at.
type Stage string

// Stages.
const (
	AtInit   Stage = "attest-init"
	AtVerify Stage = "attest-verify"
)

// Stage returns where the denial is given: origin checks at ATTEST-INIT
// (the seed: "All inbound ATTEST-INIT rejected"), everything that needs
// the verified identity at ATTEST-VERIFY.
func (d Denial) Stage() Stage {
	if d == DenyRemote {
		return AtInit
	}
	return AtVerify
}

// CheckOrigin is the ATTEST-INIT check: may a session from this origin
// start at all?
func (r Rules) CheckOrigin(local bool) Denial {
	if r.LocalOnly && !local {
		return DenyRemote
	}
	return DenyNone
}

// Admit is the ATTEST-VERIFY decision for a verified identity of tier
// opening a session of type typ from a local or remote origin.
func (r Rules) Admit(typ Type, tier string, local bool) (Denial, []Capability) {
	if d := r.CheckOrigin(local); d != DenyNone {
		return d, nil
	}
	if !slices.Contains(r.Allowed, typ) {
		return DenyType, nil
	}
	caps := r.Grant(tier)
	if len(caps) == 0 {
		return DenyTier, nil
	}
	return DenyNone, caps
}

// Effective is the level that governs a session: the more restrictive of
// the node's and the initiator's.
func Effective(local, initiator uint8) uint8 { return min(local, initiator) }

// Action is what happens to a live session when its rules change.
type Action string

// Actions.
const (
	Keep Action = "keep"
	// Drain: send DRAIN with the grace deadline; in-flight work may
	// finish; then tear down.
	Drain Action = "drain"
	// Terminate: send DRAIN with an immediate deadline and CLOSE now.
	Terminate Action = "terminate"
)

// Live is what the rules need to know about a live session.
type Live struct {
	Type    Type
	Tier    string
	Local   bool
	Granted []Capability
}

// Reevaluate decides what happens to a live session whose governing rules
// are now r. A session the rules no longer admit (origin or type) is
// terminated where the rules are abrupt and drained otherwise; a session
// holding a capability the rules would not grant it now (PROPOSE below
// master at level 3) is drained so that it re-attests for the narrower
// grant; anything else is kept. Capabilities never widen mid-session:
// after a de-escalation a fuller grant needs a new handshake.
func (r Rules) Reevaluate(s Live) Action {
	if d, _ := r.Admit(s.Type, s.Tier, s.Local); d != DenyNone {
		if r.Abrupt {
			return Terminate
		}
		return Drain
	}
	now := r.Grant(s.Tier)
	for _, c := range s.Granted {
		if !slices.Contains(now, c) {
			return Drain
		}
	}
	return Keep
}
