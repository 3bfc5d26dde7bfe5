package session

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/models/accord"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// render writes every level's rules, every admission decision (tier x
// type x origin) and every re-evaluation of a session granted at level 5
// as text, so the golden file reads as the decision table.
func render() string {
	var b strings.Builder
	for _, a := range accord.Defaults() {
		r := RulesFor(a)
		fmt.Fprintf(&b, "level %d: handshake=%s verification=%s log-all=%t narrow-below-master=%t local-only=%t abrupt=%t allowed=%v\n",
			a.Level, a.Handshake, r.Verification, r.LogAll, r.NarrowBelowMaster, r.LocalOnly, r.Abrupt, r.Allowed)
		for _, tier := range tiers {
			for _, typ := range Types {
				for _, local := range []bool{false, true} {
					origin := "remote"
					if local {
						origin = "local"
					}
					d, caps := r.Admit(typ, tier, local)
					verdict := fmt.Sprintf("grant %v", caps)
					if d != DenyNone {
						verdict = fmt.Sprintf("deny %s at %s", d, d.Stage())
					}
					five := RulesFor(mustDefault(5))
					act := r.Reevaluate(Live{Type: typ, Tier: tier, Local: local, Granted: five.Grant(tier)})
					fmt.Fprintf(&b, "  %-10s %-10s %-6s %-44s live-from-5: %s\n", tier, typ, origin, verdict, act)
				}
			}
		}
	}
	return b.String()
}

func mustDefault(l uint8) accord.Accord {
	a, err := accord.Default(l)
	if err != nil {
		panic(err)
	}
	return a
}

func TestDecisionTableGolden(t *testing.T) {
	got := render()
	path := filepath.Join("testdata", "decisions.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("decision table changed (-golden +now):\n%s", d)
	}
}

// TestSeedRules checks the seed's handshake block directly, independent
// of the golden file, so a careless -update cannot bless a wrong table.
func TestSeedRules(t *testing.T) {
	r := func(l uint8) Rules { return RulesFor(mustDefault(l)) }
	// Levels 5 and 4 validate from the cache, 3..1 re-verify.
	for l, want := range map[uint8]Verification{5: Cached, 4: Cached, 3: Reverified, 2: Reverified, 1: Reverified} {
		if got := r(l).Verification; got != want {
			t.Errorf("level %d verification = %s, want %s", l, got, want)
		}
	}
	if r(5).LogAll || !r(4).LogAll {
		t.Errorf("log-all: level 5 %t (want false), level 4 %t (want true)", r(5).LogAll, r(4).LogAll)
	}
	// Level 5: full grant for an operator; level 3: PROPOSE revoked below
	// master, kept for master.
	if d, caps := r(5).Admit(Operator, accord.TierOperator, false); d != DenyNone || !cmp.Equal(caps, []Capability{Observe, Execute, Propose}) {
		t.Errorf("level 5 operator: %q %v", d, caps)
	}
	if _, caps := r(3).Admit(Operator, accord.TierSiteOwner, false); !cmp.Equal(caps, []Capability{Observe, Execute}) {
		t.Errorf("level 3 site-owner caps %v, want observe+execute", caps)
	}
	if _, caps := r(3).Admit(Operator, accord.TierMaster, false); !cmp.Equal(caps, []Capability{Observe, Execute, Propose}) {
		t.Errorf("level 3 master caps %v, want the full grant", caps)
	}
	// Level 2: critical types only, refused at ATTEST-VERIFY.
	for _, typ := range Types {
		d, _ := r(2).Admit(typ, accord.TierMaster, false)
		if typ.Critical() != (d == DenyNone) {
			t.Errorf("level 2 %s: denial %q", typ, d)
		}
		if d == DenyType && d.Stage() != AtVerify {
			t.Errorf("level 2 type denial at %s, want attest-verify", d.Stage())
		}
	}
	// Level 1: remote refused at ATTEST-INIT; local management admitted.
	if d := r(1).CheckOrigin(false); d != DenyRemote || d.Stage() != AtInit {
		t.Errorf("level 1 remote: %q at %s", d, d.Stage())
	}
	if d, _ := r(1).Admit(Management, accord.TierMaster, true); d != DenyNone {
		t.Errorf("level 1 local management denied: %q", d)
	}
	// Escalation 5->3 drains a lower tier's session, keeps master's; 3->2
	// terminates non-critical sessions and keeps critical ones.
	live := func(typ Type, tier string) Live {
		return Live{Type: typ, Tier: tier, Granted: r(5).Grant(tier)}
	}
	if a := r(3).Reevaluate(live(Operator, accord.TierOperator)); a != Drain {
		t.Errorf("5->3 operator session: %s, want drain", a)
	}
	if a := r(3).Reevaluate(live(Operator, accord.TierMaster)); a != Keep {
		t.Errorf("5->3 master session: %s, want keep", a)
	}
	narrowed := Live{Type: Routine, Tier: accord.TierOperator, Granted: r(3).Grant(accord.TierOperator)}
	if a := r(2).Reevaluate(narrowed); a != Terminate {
		t.Errorf("3->2 routine session: %s, want terminate", a)
	}
	narrowed.Type = Incident
	if a := r(2).Reevaluate(narrowed); a != Keep {
		t.Errorf("3->2 incident session: %s, want keep", a)
	}
	// De-escalation keeps a narrowed session as it is.
	if a := r(5).Reevaluate(narrowed); a != Keep {
		t.Errorf("3->5 narrowed session: %s, want keep", a)
	}
}

func TestOverrideChangesRules(t *testing.T) {
	// An operator who overrides level 3's allowed types to critical ones
	// gets a graceful drain of the others (level 3 is not abrupt).
	crit := []string{"management", "incident", "monitoring"}
	a, err := accord.Effective(3, accord.Overrides{3: {AllowedSessionTypes: crit}})
	if err != nil {
		t.Fatal(err)
	}
	if act := RulesFor(a).Reevaluate(Live{Type: Routine, Tier: accord.TierMaster, Granted: FullGrant(accord.TierMaster)}); act != Drain {
		t.Errorf("routine at overridden level 3: %s, want drain", act)
	}
	// An unknown handshake mode is as strict as local-only.
	if r := RulesFor(accord.Accord{Level: 5, Handshake: "bogus"}); !r.LocalOnly || r.Verification != Reverified {
		t.Errorf("unknown mode: %+v", r)
	}
}

func TestParseType(t *testing.T) {
	for _, s := range []string{"management", "incident", "monitoring", "operator", "routine"} {
		if _, err := ParseType(s); err != nil {
			t.Errorf("ParseType(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "incident-response", "health-monitoring", "Management"} {
		if _, err := ParseType(s); err == nil {
			t.Errorf("ParseType(%q) accepted", s)
		}
	}
	if Effective(5, 3) != 3 || Effective(2, 4) != 2 {
		t.Error("Effective is not the minimum")
	}
}
