package accord

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

var update = flag.Bool("update", false, "rewrite testdata/accords.golden")

// TestGolden pins every default accord; a change to the seed mapping shows
// up as a diff of this file in review.
func TestGolden(t *testing.T) {
	got, err := json.MarshalIndent(Defaults(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "accords.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("accords differ from %s (-want +got):\n%s", golden, d)
	}
}

// TestSeedTables checks each row of the seed's tables against the accord of
// its level, one assertion per cell, quoting the row.
func TestSeedTables(t *testing.T) {
	type row struct {
		level uint8
		seed  string // the seed table row this checks
		check func(Accord) bool
	}
	rows := []row{
		// Overlay mode (WireGuard mesh).
		{5, "overlay 5: Full mesh. All tunnels active. Standard keepalive.", func(a Accord) bool {
			return a.OverlayMode == OverlayFull && a.KeepaliveSeconds == 25 && a.HealthCheckSeconds == 30
		}},
		{4, "overlay 4: Full mesh. Increased health check frequency.", func(a Accord) bool {
			return a.OverlayMode == OverlayFullFastHealth && a.HealthCheckSeconds < 30 && a.KeepaliveSeconds == 25
		}},
		{3, "overlay 3: Full mesh maintained, but new sessions require fresh SAT re-verification.", func(a Accord) bool {
			return a.OverlayMode == OverlayFullReverify && a.KeepaliveSeconds == 25
		}},
		{2, "overlay 2: Mesh maintained for management traffic only.", func(a Accord) bool {
			return a.OverlayMode == OverlayManagementOnly
		}},
		{1, "overlay 1: All remote overlay tunnels torn down.", func(a Accord) bool {
			return a.OverlayMode == OverlayIsolated && a.KeepaliveSeconds == 0 && a.HealthCheckSeconds == 0
		}},
		// Underlay mode.
		{5, "underlay 5: All authorized tiers can trigger infrastructure mutations.", func(a Accord) bool {
			return cmp.Equal(a.UnderlayMutationTiers, []string{TierMaster, TierSiteOwner, TierOperator}) && !a.CompilerFrozen
		}},
		{4, "underlay 4: Normal operations. Drift detection increased.", func(a Accord) bool {
			five, _ := Default(5)
			return cmp.Equal(a.UnderlayMutationTiers, []string{TierMaster, TierSiteOwner, TierOperator}) && !a.CompilerFrozen &&
				a.UnderlayDriftMillis > 0 && a.UnderlayDriftMillis < five.UnderlayDriftMillis
		}},
		{3, "underlay 3: Underlay mutations restricted to master + site_owner tiers.", func(a Accord) bool {
			return cmp.Equal(a.UnderlayMutationTiers, []string{TierMaster, TierSiteOwner}) && !a.CompilerFrozen
		}},
		{2, "underlay 2: restricted to site_owner only. YANG compiler frozen.", func(a Accord) bool {
			return cmp.Equal(a.UnderlayMutationTiers, []string{TierSiteOwner}) && a.CompilerFrozen
		}},
		{1, "underlay 1: All underlay operations frozen. No infrastructure mutations.", func(a Accord) bool {
			return len(a.UnderlayMutationTiers) == 0 && a.CompilerFrozen
		}},
		// Shellstream handshake.
		{5, "handshake 5: Standard 3-way handshake. SAT validated from cache.", func(a Accord) bool {
			return a.Handshake == HandshakeCache && len(a.AllowedSessionTypes) == 5
		}},
		{4, "handshake 4: SAT validated from cache. Log all new sessions.", func(a Accord) bool {
			return a.Handshake == HandshakeCacheLogAll && len(a.AllowedSessionTypes) == 5
		}},
		{3, "handshake 3: Strict handshake. SAT re-verified (no cache).", func(a Accord) bool {
			return a.Handshake == HandshakeReverify && len(a.AllowedSessionTypes) == 5
		}},
		{2, "handshake 2: Only critical session types (management, incident response, health monitoring).", func(a Accord) bool {
			return a.Handshake == HandshakeCriticalOnly &&
				cmp.Equal(a.AllowedSessionTypes, []string{SessionManagement, SessionIncident, SessionMonitoring})
		}},
		{1, "handshake 1: No remote handshakes. Only local Shellstream for console management.", func(a Accord) bool {
			return a.Handshake == HandshakeLocalOnly && cmp.Equal(a.AllowedSessionTypes, []string{SessionManagement})
		}},
		// CNI route changes.
		{5, "cni 5: Full routes per allowed_targets and allowed_mode.", func(a Accord) bool { return a.RoutePolicy == RoutesFull }},
		{4, "cni 4: Same as 5. No route changes.", func(a Accord) bool { return a.RoutePolicy == RoutesFull }},
		{3, "cni 3: Remove underlay routes for pods with tiers below master.", func(a Accord) bool {
			return a.RoutePolicy == RoutesWithholdUnderlayBelowMaster
		}},
		{2, "cni 2: Only routes to management endpoints and incident response targets.", func(a Accord) bool {
			return a.RoutePolicy == RoutesCriticalOnly
		}},
		{1, "cni 1: Remove all overlay routes; all underlay except monitoring-only.", func(a Accord) bool {
			return a.RoutePolicy == RoutesMonitoringOnly
		}},
		// Notarization fidelity.
		{5, "notary 5: Sampled — 10% of routine session transits.", func(a Accord) bool {
			return a.NotarySamplingPercent == 10 && a.NotaryFlush == FlushBatched && !a.NotaryPayloadHashing && !a.ForensicSnapshot
		}},
		{4, "notary 4: Increased — 50% of session transits.", func(a Accord) bool {
			return a.NotarySamplingPercent == 50 && a.NotaryFlush == FlushBatched && !a.NotaryPayloadHashing && !a.ForensicSnapshot
		}},
		{3, "notary 3: Full — 100% of session transits.", func(a Accord) bool {
			return a.NotarySamplingPercent == 100 && a.NotaryFlush == FlushBatched && !a.NotaryPayloadHashing && !a.ForensicSnapshot
		}},
		{2, "notary 2: Full + real-time — immediate anchor flushing (no batching).", func(a Accord) bool {
			return a.NotarySamplingPercent == 100 && a.NotaryFlush == FlushImmediate && !a.NotaryPayloadHashing && !a.ForensicSnapshot
		}},
		{1, "notary 1: Forensic — full payload hashing, flush every record, PostureForensicSnapshot.", func(a Accord) bool {
			return a.NotarySamplingPercent == 100 && a.NotaryFlush == FlushEveryRecord && a.NotaryPayloadHashing && a.ForensicSnapshot
		}},
		// VPP governance plugin.
		{5, "vpp 5: standard flow rules", func(a Accord) bool { return a.VPPFlowPolicy == VPPStandard }},
		{4, "vpp 4: deep packet classification enabled", func(a Accord) bool { return a.VPPFlowPolicy == VPPDeepClassification }},
		{3, "vpp 3: non-essential inter-zone traffic deprioritized", func(a Accord) bool { return a.VPPFlowPolicy == VPPDeprioritizeInterZone }},
		{2, "vpp 2: emergency zone policy (critical flows only)", func(a Accord) bool { return a.VPPFlowPolicy == VPPEmergencyZone }},
		{1, "vpp 1: allowlist-only", func(a Accord) bool { return a.VPPFlowPolicy == VPPAllowlistOnly }},
	}
	seen := map[uint8]int{}
	for _, r := range rows {
		a, err := Default(r.level)
		if err != nil {
			t.Fatal(err)
		}
		if a.Level != r.level {
			t.Errorf("Default(%d).Level = %d", r.level, a.Level)
		}
		if !r.check(a) {
			t.Errorf("level %d does not match seed row %q: %+v", r.level, r.seed, a)
		}
		seen[r.level]++
	}
	for l := MinLevel; l <= MaxLevel; l++ {
		if seen[l] != 6 {
			t.Errorf("level %d: %d seed rows checked, want 6 (one per table)", l, seen[l])
		}
	}
}

func TestDefaultOutOfRange(t *testing.T) {
	for _, l := range []uint8{0, 6, 255} {
		if _, err := Default(l); err == nil {
			t.Errorf("Default(%d): no error", l)
		}
	}
}

// TestDefaultsAreCopies makes sure a caller cannot corrupt the table.
func TestDefaultsAreCopies(t *testing.T) {
	a, _ := Default(5)
	a.AllowedSessionTypes[0] = "mutated"
	b, _ := Default(5)
	if b.AllowedSessionTypes[0] != SessionManagement {
		t.Fatalf("Default shares its slices: %v", b.AllowedSessionTypes)
	}
}

func TestOverridesFromTree(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(schema)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	set := func(p string, v *gpb.TypedValue) {
		t.Helper()
		elems, err := tree.ParsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Update(elems, v); err != nil {
			t.Fatalf("update %s: %v", p, err)
		}
	}
	base := "/kedge/accords/accord[level=3]/config/"
	set(base+"level", &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 3}})
	set(base+"keepalive-seconds", &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 5}})
	set(base+"vpp-flow-policy", &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "emergency-zone"}})
	set(base+"allowed-session-types", &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`["management"]`)}})
	set(base+"compiler-frozen", &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}})
	set(base+"underlay-drift-interval-ms", &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 500}})
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	tx.Commit()

	o := OverridesFromTree(tr)
	if len(o) != 1 {
		t.Fatalf("got overrides for %d levels, want 1: %+v", len(o), o)
	}
	got, err := Effective(3, o)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Default(3)
	want.KeepaliveSeconds = 5
	want.VPPFlowPolicy = VPPEmergencyZone
	want.AllowedSessionTypes = []string{SessionManagement}
	want.CompilerFrozen = true
	want.UnderlayDriftMillis = 500
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Effective(3) (-want +got):\n%s", d)
	}
	// Other levels keep their defaults.
	for _, a := range All(o) {
		if a.Level == 3 {
			continue
		}
		d, _ := Default(a.Level)
		if !a.Equal(d) {
			t.Errorf("level %d changed by a level-3 override: %+v", a.Level, a)
		}
	}
}

// TestFieldsMatchSchema keeps the Go field names (JSON tags) and the YANG
// leaves of accord config in step, both ways.
func TestFieldsMatchSchema(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	cfg := schema.Find("/kedge/accords/accord/config")
	if cfg == nil {
		t.Fatal("no /kedge/accords/accord/config in the schema")
	}
	var m map[string]any
	b, _ := json.Marshal(Defaults()[0])
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name := range m {
		if cfg.Child(name) == nil {
			t.Errorf("field %q has no YANG leaf", name)
		}
	}
	for _, ch := range cfg.Children {
		if _, ok := m[ch.Name]; !ok {
			t.Errorf("YANG leaf %q has no field", ch.Name)
		}
	}
}

func TestCurrentTakesTheStricterLevel(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	set := func(tr *tree.Tree, state bool, p string, v uint64) {
		t.Helper()
		tx, err := tr.Begin(state)
		if err != nil {
			t.Fatal(err)
		}
		elems, _ := tree.ParsePath(p)
		if err := tx.Update(elems, &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}}); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	tests := []struct {
		config, effective uint64 // 0: unset
		want              uint8
	}{
		{0, 0, 5},
		{3, 0, 3},
		{1, 5, 1}, // escalation under way: config already says 1
		{5, 1, 1}, // de-escalation under way: the engine still says 1
		{4, 2, 2}, // the BPF map holds the node at 2
	}
	for _, tc := range tests {
		tr := tree.New(schema)
		if tc.config != 0 {
			set(tr, false, "/kedge/posture/config/level", tc.config)
		}
		if tc.effective != 0 {
			set(tr, true, "/kedge/posture/state/effective-level", tc.effective)
		}
		if got := Current(tr).Level; got != tc.want {
			t.Errorf("config %d, effective %d: Current level %d, want %d", tc.config, tc.effective, got, tc.want)
		}
	}
}
