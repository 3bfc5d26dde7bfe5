package underlay

import (
	"strconv"
	"strings"

	"github.com/guildhouse-co/kedge/models/accord"
)

// Frozen reports whether the accord freezes every underlay operation (the
// seed's level 1: no compilation, no execution, no repair): the compiler
// is frozen and no tier may execute.
func Frozen(a accord.Accord) bool { return a.CompilerFrozen && len(a.UnderlayMutationTiers) == 0 }

// Repairs reports whether drift is repaired by a push at this accord (the
// seed's levels 5 and 4, where every authorized tier may mutate and the
// compiler runs) rather than only reported.
func Repairs(a accord.Accord) bool {
	return !a.CompilerFrozen && a.TierAllowed(accord.TierOperator)
}

// Decision is what the accord lets a proposal do now.
type Decision struct {
	Compile bool   // it may be compiled (captured) now
	Execute bool   // once compiled, it may execute now
	Reason  string // why not, when either is false
}

// Gate decides for a proposal under an accord (the seed's underlay table
// through the accords):
//
//   - a frozen underlay (level 1) neither compiles nor executes anything;
//   - a frozen compiler (level 2) compiles nothing; of what was compiled
//     before, only emergency changes execute;
//   - execution needs the proposal's tier among the accord's underlay
//     mutation tiers (5 and 4: every authorized tier; 3: master and
//     site-owner; 2: site-owner);
//   - an emergency change, pre-approved by being compiled ahead of time,
//     waits for its execute leaf.
//
// Compilation does not depend on the tier: every tier may propose, and a
// proposal that waits for a higher level shows its diff meanwhile.
func Gate(a accord.Accord, p Proposal, compiled bool) Decision {
	lvl := "posture level " + strconv.Itoa(int(a.Level))
	switch {
	case Frozen(a):
		return Decision{Reason: lvl + ": all underlay operations are frozen"}
	case !compiled && a.CompilerFrozen:
		return Decision{Reason: lvl + ": the compiler is frozen; only emergency changes compiled before the freeze may execute"}
	}
	d := Decision{Compile: !a.CompilerFrozen}
	switch {
	case a.CompilerFrozen && !p.Emergency:
		d.Reason = lvl + ": the compiler is frozen; only pre-approved emergency changes may execute"
	case !a.TierAllowed(p.Tier):
		d.Reason = lvl + ": execution is allowed for tiers " + tiers(a.UnderlayMutationTiers) + ", not " + tierName(p.Tier)
	case p.Emergency && !p.Execute:
		d.Reason = "pre-approved emergency change, held until execute is set"
	default:
		d.Execute = true
	}
	return d
}

func tiers(ts []string) string {
	if len(ts) == 0 {
		return "none"
	}
	return strings.Join(ts, ", ")
}

func tierName(t string) string {
	if t == "" {
		return "a proposal without a tier"
	}
	return t
}
