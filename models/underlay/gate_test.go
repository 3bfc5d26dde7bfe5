package underlay

import (
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/models/accord"
)

// TestGateSeedTable is the seed's underlay table through the default
// accords: who may execute at each level, the frozen compiler at 2, and
// nothing at 1. Each row states the expectation directly.
func TestGateSeedTable(t *testing.T) {
	type want struct{ compile, execute bool }
	rows := []struct {
		level    uint8
		tier     string
		emerg    bool
		execute  bool
		compiled bool
		want     want
		reason   string // substring of the reason when not executing
	}{
		// 5 and 4: every authorized tier; observers are not authorized.
		{5, "operator", false, false, false, want{true, true}, ""},
		{5, "master", false, false, true, want{true, true}, ""},
		{4, "operator", false, false, true, want{true, true}, ""},
		{4, "site-owner", false, false, true, want{true, true}, ""},
		{5, "observer", false, false, true, want{true, false}, "not observer"},
		// 3: master and site-owner execute; an operator's proposal is
		// accepted and compiled, and waits.
		{3, "master", false, false, true, want{true, true}, ""},
		{3, "site-owner", false, false, true, want{true, true}, ""},
		{3, "operator", false, false, true, want{true, false}, "master, site-owner, not operator"},
		{3, "operator", false, false, false, want{true, false}, "not operator"},
		// 2: the compiler is frozen; only emergency changes compiled before,
		// by site-owner, once released.
		{2, "site-owner", false, false, false, want{false, false}, "compiler is frozen"},
		{2, "site-owner", true, true, false, want{false, false}, "compiled before the freeze"},
		{2, "site-owner", false, false, true, want{false, false}, "only pre-approved emergency"},
		{2, "site-owner", true, true, true, want{false, true}, ""},
		{2, "site-owner", true, false, true, want{false, false}, "held until execute"},
		{2, "master", true, true, true, want{false, false}, "site-owner, not master"},
		// 1: nothing.
		{1, "master", true, true, true, want{false, false}, "all underlay operations are frozen"},
		{1, "site-owner", false, false, false, want{false, false}, "frozen"},
		// Emergency changes are held at every level until released.
		{5, "operator", true, false, true, want{true, false}, "held until execute"},
		{5, "operator", true, true, true, want{true, true}, ""},
	}
	for _, r := range rows {
		a, err := accord.Default(r.level)
		if err != nil {
			t.Fatal(err)
		}
		d := Gate(a, Proposal{Tier: r.tier, Emergency: r.emerg, Execute: r.execute}, r.compiled)
		if d.Compile != r.want.compile || d.Execute != r.want.execute {
			t.Errorf("level %d %s emergency=%v execute=%v compiled=%v: compile %v execute %v (%s), want %v %v",
				r.level, r.tier, r.emerg, r.execute, r.compiled, d.Compile, d.Execute, d.Reason, r.want.compile, r.want.execute)
		}
		if !d.Execute && !strings.Contains(d.Reason, r.reason) {
			t.Errorf("level %d %s: reason %q, want it to say %q", r.level, r.tier, d.Reason, r.reason)
		}
		if d.Execute && d.Reason != "" {
			t.Errorf("level %d %s: executes with a reason %q", r.level, r.tier, d.Reason)
		}
	}
}

func TestFrozenAndRepairs(t *testing.T) {
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		if got, want := Frozen(a), l == 1; got != want {
			t.Errorf("level %d: Frozen %v, want %v", l, got, want)
		}
		if got, want := Repairs(a), l >= 4; got != want {
			t.Errorf("level %d: Repairs %v, want %v (the seed repairs at 5 and 4, reports at 3..1)", l, got, want)
		}
	}
}
