// Package accord holds the posture accords as data: for each posture level
// 1 (lockdown) .. 5 (normal) what the overlay mesh, the underlay, the
// Shellstream handshake, the CNI routes, the notary and the VPP flow policy
// do. The defaults are the seed's tables; operators override them leaf by
// leaf under /kedge/accords/accord[level]/config, and Effective merges the
// two. Field names follow the YANG leaves of kedge-accords.
package accord

import (
	"fmt"
	"slices"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
)

// Level bounds. Lower is more restrictive.
const (
	MinLevel uint8 = 1
	MaxLevel uint8 = 5
)

// Overlay mesh modes (leaf overlay-mode).
const (
	OverlayFull           = string(kedgepath.AccordOverlayModeFull)
	OverlayFullFastHealth = string(kedgepath.AccordOverlayModeFullFastHealth)
	OverlayFullReverify   = string(kedgepath.AccordOverlayModeFullReverify)
	OverlayManagementOnly = string(kedgepath.AccordOverlayModeManagementOnly)
	OverlayIsolated       = string(kedgepath.AccordOverlayModeIsolated)
)

// Handshake policies (leaf handshake).
const (
	HandshakeCache        = string(kedgepath.AccordHandshakeCache)
	HandshakeCacheLogAll  = string(kedgepath.AccordHandshakeCacheLogAll)
	HandshakeReverify     = string(kedgepath.AccordHandshakeReverify)
	HandshakeCriticalOnly = string(kedgepath.AccordHandshakeCriticalOnly)
	HandshakeLocalOnly    = string(kedgepath.AccordHandshakeLocalOnly)
)

// Route policies (leaf route-policy).
const (
	RoutesFull                        = string(kedgepath.AccordRoutePolicyFull)
	RoutesWithholdUnderlayBelowMaster = string(kedgepath.AccordRoutePolicyWithholdUnderlayBelowMaster)
	RoutesCriticalOnly                = string(kedgepath.AccordRoutePolicyCriticalOnly)
	RoutesMonitoringOnly              = string(kedgepath.AccordRoutePolicyMonitoringOnly)
)

// Notary flush modes (typedef notary-flush-mode).
const (
	FlushBatched     = string(kedgepath.NotaryFlushModeBatched)
	FlushImmediate   = string(kedgepath.NotaryFlushModeImmediate)
	FlushEveryRecord = string(kedgepath.NotaryFlushModeEveryRecord)
)

// VPP flow policies (leaf vpp-flow-policy).
const (
	VPPStandard              = string(kedgepath.AccordVppFlowPolicyStandard)
	VPPDeepClassification    = string(kedgepath.AccordVppFlowPolicyDeepClassification)
	VPPDeprioritizeInterZone = string(kedgepath.AccordVppFlowPolicyDeprioritizeInterZone)
	VPPEmergencyZone         = string(kedgepath.AccordVppFlowPolicyEmergencyZone)
	VPPAllowlistOnly         = string(kedgepath.AccordVppFlowPolicyAllowlistOnly)
)

// Session types (leaf-list allowed-session-types).
const (
	SessionManagement = "management"
	SessionIncident   = "incident"
	SessionMonitoring = "monitoring"
	SessionOperator   = "operator"
	SessionRoutine    = "routine"
)

// ServiceQuartermaster is the service name (leaf
// /kedge/routes/endpoints/endpoint/config/service) of the Quartermaster
// endpoint. Routes to it and the level-1 egress allowlist keep it at every
// level: the seed isolates the node at level 1 yet flushes every notary
// record to Quartermaster there.
const ServiceQuartermaster = "quartermaster"

// Tiers (typedef tier), highest first.
const (
	TierMaster    = string(kedgepath.TierMaster)
	TierSiteOwner = string(kedgepath.TierSiteOwner)
	TierOperator  = string(kedgepath.TierOperator)
	TierObserver  = string(kedgepath.TierObserver)
)

// Accord is the policy of one posture level. Slices are never shared
// between Accords returned by this package: callers may modify them.
type Accord struct {
	Level                 uint8    `json:"level"`
	OverlayMode           string   `json:"overlay-mode"`
	KeepaliveSeconds      uint16   `json:"keepalive-seconds"`
	HealthCheckSeconds    uint16   `json:"health-check-seconds"`
	Handshake             string   `json:"handshake"`
	AllowedSessionTypes   []string `json:"allowed-session-types"`
	UnderlayMutationTiers []string `json:"underlay-mutation-tiers"`
	CompilerFrozen        bool     `json:"compiler-frozen"`
	UnderlayDriftMillis   uint32   `json:"underlay-drift-interval-ms"`
	RoutePolicy           string   `json:"route-policy"`
	NotarySamplingPercent uint8    `json:"notary-sampling-percent"`
	NotaryFlush           string   `json:"notary-flush"`
	NotaryPayloadHashing  bool     `json:"notary-payload-hashing"`
	ForensicSnapshot      bool     `json:"forensic-snapshot"`
	VPPFlowPolicy         string   `json:"vpp-flow-policy"`
}

// Valid reports whether level is a posture level.
func Valid(level uint8) bool { return level >= MinLevel && level <= MaxLevel }

// Default returns the seed's accord for level.
func Default(level uint8) (Accord, error) {
	if !Valid(level) {
		return Accord{}, fmt.Errorf("look up accord: level %d out of range %d..%d", level, MinLevel, MaxLevel)
	}
	return defaults[level-1].clone(), nil
}

// Defaults returns the seed's accords for levels 1..5, in that order.
func Defaults() []Accord {
	out := make([]Accord, len(defaults))
	for i, a := range defaults {
		out[i] = a.clone()
	}
	return out
}

func (a Accord) clone() Accord {
	a.AllowedSessionTypes = slices.Clone(a.AllowedSessionTypes)
	a.UnderlayMutationTiers = slices.Clone(a.UnderlayMutationTiers)
	return a
}

// Equal reports whether two accords say the same thing.
func (a Accord) Equal(b Accord) bool {
	return a.Level == b.Level && a.OverlayMode == b.OverlayMode &&
		a.KeepaliveSeconds == b.KeepaliveSeconds && a.HealthCheckSeconds == b.HealthCheckSeconds &&
		a.Handshake == b.Handshake && slices.Equal(a.AllowedSessionTypes, b.AllowedSessionTypes) &&
		slices.Equal(a.UnderlayMutationTiers, b.UnderlayMutationTiers) &&
		a.CompilerFrozen == b.CompilerFrozen && a.UnderlayDriftMillis == b.UnderlayDriftMillis &&
		a.RoutePolicy == b.RoutePolicy &&
		a.NotarySamplingPercent == b.NotarySamplingPercent && a.NotaryFlush == b.NotaryFlush &&
		a.NotaryPayloadHashing == b.NotaryPayloadHashing && a.ForensicSnapshot == b.ForensicSnapshot &&
		a.VPPFlowPolicy == b.VPPFlowPolicy
}

// TierAllowed reports whether tier may execute underlay mutations.
func (a Accord) TierAllowed(tier string) bool { return slices.Contains(a.UnderlayMutationTiers, tier) }

// SessionAllowed reports whether a session of type typ may start or continue.
func (a Accord) SessionAllowed(typ string) bool { return slices.Contains(a.AllowedSessionTypes, typ) }
