package accord

// Numbers the seed leaves open, chosen here and pinned by the golden file.
const (
	// standardKeepalive is WireGuard's customary persistent keepalive, the
	// seed's "standard keepalive" at level 5.
	standardKeepalive = 25
	// standardHealthCheck is the level-5 peer health-check interval; level
	// 4 "increases health check frequency" to fastHealthCheck, and the
	// stricter levels keep the faster checks rather than relax them.
	standardHealthCheck = 30
	fastHealthCheck     = 10
	// standardDrift is how often (ms) an underlay device without an
	// ON_CHANGE subscription is read for drift at level 5; level 4
	// "increases YANG drift detection frequency" to fastDrift, and the
	// stricter levels keep it, as they keep the faster health checks
	// (they report drift rather than repair it, but still watch).
	standardDrift = 30_000
	fastDrift     = 10_000
)

var allSessionTypes = []string{SessionManagement, SessionIncident, SessionMonitoring, SessionOperator, SessionRoutine}

// criticalSessionTypes are the seed's "critical session types (management,
// incident response, health monitoring)".
var criticalSessionTypes = []string{SessionManagement, SessionIncident, SessionMonitoring}

// authorizedTiers are the tiers that may mutate at all: an observer is
// read-only by definition, so "all authorized tiers" excludes it.
var authorizedTiers = []string{TierMaster, TierSiteOwner, TierOperator}

// defaults[i] is the accord of level i+1. Each field cites the seed table
// row it comes from (seed: ../shared/seed/000_eae86ca82bf2a661.md).
var defaults = [5]Accord{
	{
		Level: 1,
		// Overlay 1: "All remote overlay tunnels torn down. Cloud anchor
		// disconnected." No tunnels, so no keepalive and no health checks.
		OverlayMode:        OverlayIsolated,
		KeepaliveSeconds:   0,
		HealthCheckSeconds: 0,
		// Handshake 1: "No remote handshakes ... Only local Shellstream
		// (loopback) permitted for console management."
		Handshake:           HandshakeLocalOnly,
		AllowedSessionTypes: []string{SessionManagement},
		// Underlay 1: "All underlay operations frozen. No infrastructure
		// mutations."
		UnderlayMutationTiers: []string{},
		CompilerFrozen:        true,
		UnderlayDriftMillis:   fastDrift,
		// CNI 1: "Remove all overlay routes. Remove all underlay routes
		// except monitoring-only."
		RoutePolicy: RoutesMonitoringOnly,
		// Notary 1: "Forensic — 100% with full payload hashing. Anchor flush
		// on every record." plus the PostureForensicSnapshot.
		NotarySamplingPercent: 100,
		NotaryFlush:           FlushEveryRecord,
		NotaryPayloadHashing:  true,
		ForensicSnapshot:      true,
		// VPP 1: "allowlist-only (everything not pre-approved dropped)".
		VPPFlowPolicy: VPPAllowlistOnly,
	},
	{
		Level: 2,
		// Overlay 2: "Mesh maintained for management traffic only."
		OverlayMode:        OverlayManagementOnly,
		KeepaliveSeconds:   standardKeepalive,
		HealthCheckSeconds: fastHealthCheck,
		// Handshake 2: "Restricted handshake. SAT re-verified. Only
		// critical session types permitted (management, incident
		// response, health monitoring)."
		Handshake:           HandshakeCriticalOnly,
		AllowedSessionTypes: criticalSessionTypes,
		// Underlay 2: "Underlay mutations restricted to site_owner only.
		// YANG compiler frozen."
		UnderlayMutationTiers: []string{TierSiteOwner},
		CompilerFrozen:        true,
		UnderlayDriftMillis:   fastDrift,
		// CNI 2: "Only routes to management endpoints ... and incident
		// response targets retained."
		RoutePolicy: RoutesCriticalOnly,
		// Notary 2: "Full + real-time — 100% with immediate anchor
		// flushing (no batching)."
		NotarySamplingPercent: 100,
		NotaryFlush:           FlushImmediate,
		// VPP 2: "emergency zone policy (critical flows only)".
		VPPFlowPolicy: VPPEmergencyZone,
	},
	{
		Level: 3,
		// Overlay 3: "Full mesh maintained, but new Shellstream sessions
		// require fresh SAT re-verification at handshake."
		OverlayMode:        OverlayFullReverify,
		KeepaliveSeconds:   standardKeepalive,
		HealthCheckSeconds: fastHealthCheck,
		// Handshake 3: "Strict handshake. SAT re-verified ... (no cache)."
		// Capabilities narrow, session types do not.
		Handshake:           HandshakeReverify,
		AllowedSessionTypes: allSessionTypes,
		// Underlay 3: "restricted to master + site_owner tiers".
		UnderlayMutationTiers: []string{TierMaster, TierSiteOwner},
		UnderlayDriftMillis:   fastDrift,
		// CNI 3: "Remove underlay routes for pods whose shell_state shows
		// tiers below master. Overlay routes maintained."
		RoutePolicy: RoutesWithholdUnderlayBelowMaster,
		// Notary 3: "Full — 100% of session transits."
		NotarySamplingPercent: 100,
		NotaryFlush:           FlushBatched,
		// VPP 3: "non-essential inter-zone traffic deprioritized".
		VPPFlowPolicy: VPPDeprioritizeInterZone,
	},
	{
		Level: 4,
		// Overlay 4: "Full mesh. Increased health check frequency."
		OverlayMode:        OverlayFullFastHealth,
		KeepaliveSeconds:   standardKeepalive,
		HealthCheckSeconds: fastHealthCheck,
		// Handshake 4: "SAT validated from cache ... log all new sessions".
		Handshake:           HandshakeCacheLogAll,
		AllowedSessionTypes: allSessionTypes,
		// Underlay 4: "Normal operations. YANG drift detection frequency
		// increased."
		UnderlayMutationTiers: authorizedTiers,
		UnderlayDriftMillis:   fastDrift,
		// CNI 4: "Same as 5. No route changes."
		RoutePolicy: RoutesFull,
		// Notary 4: "Increased — 50% of session transits."
		NotarySamplingPercent: 50,
		NotaryFlush:           FlushBatched,
		// VPP 4: "deep packet classification enabled".
		VPPFlowPolicy: VPPDeepClassification,
	},
	{
		Level: 5,
		// Overlay 5: "Full mesh. All tunnels active. Standard keepalive."
		OverlayMode:        OverlayFull,
		KeepaliveSeconds:   standardKeepalive,
		HealthCheckSeconds: standardHealthCheck,
		// Handshake 5: "SAT validated from cache. Full capability grant."
		Handshake:           HandshakeCache,
		AllowedSessionTypes: allSessionTypes,
		// Underlay 5: "All authorized tiers can trigger infrastructure
		// mutations."
		UnderlayMutationTiers: authorizedTiers,
		UnderlayDriftMillis:   standardDrift,
		// CNI 5: "Full routes per allowed_targets and allowed_mode."
		RoutePolicy: RoutesFull,
		// Notary 5: "Sampled — 10% of routine session transits."
		NotarySamplingPercent: 10,
		NotaryFlush:           FlushBatched,
		// VPP 5: "standard flow rules".
		VPPFlowPolicy: VPPStandard,
	},
}
