package accord

import (
	"slices"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Patch is an operator's override of one level's accord: nil fields keep
// the default. It mirrors /kedge/accords/accord[level]/config.
type Patch struct {
	OverlayMode           *string
	KeepaliveSeconds      *uint16
	HealthCheckSeconds    *uint16
	Handshake             *string
	AllowedSessionTypes   []string // nil keeps the default
	UnderlayMutationTiers []string // nil keeps the default
	CompilerFrozen        *bool
	RoutePolicy           *string
	NotarySamplingPercent *uint8
	NotaryFlush           *string
	NotaryPayloadHashing  *bool
	ForensicSnapshot      *bool
	VPPFlowPolicy         *string
}

func (p Patch) empty() bool {
	return p.OverlayMode == nil && p.KeepaliveSeconds == nil && p.HealthCheckSeconds == nil &&
		p.Handshake == nil && p.AllowedSessionTypes == nil && p.UnderlayMutationTiers == nil &&
		p.CompilerFrozen == nil && p.RoutePolicy == nil && p.NotarySamplingPercent == nil &&
		p.NotaryFlush == nil && p.NotaryPayloadHashing == nil && p.ForensicSnapshot == nil &&
		p.VPPFlowPolicy == nil
}

// Overrides are the patches per level.
type Overrides map[uint8]Patch

// Effective returns the accord of level: the seed's default with the
// level's patch applied leaf by leaf.
func Effective(level uint8, o Overrides) (Accord, error) {
	a, err := Default(level)
	if err != nil {
		return Accord{}, err
	}
	p, ok := o[level]
	if !ok {
		return a, nil
	}
	setIf(&a.OverlayMode, p.OverlayMode)
	setIf(&a.KeepaliveSeconds, p.KeepaliveSeconds)
	setIf(&a.HealthCheckSeconds, p.HealthCheckSeconds)
	setIf(&a.Handshake, p.Handshake)
	if p.AllowedSessionTypes != nil {
		a.AllowedSessionTypes = slices.Clone(p.AllowedSessionTypes)
	}
	if p.UnderlayMutationTiers != nil {
		a.UnderlayMutationTiers = slices.Clone(p.UnderlayMutationTiers)
	}
	setIf(&a.CompilerFrozen, p.CompilerFrozen)
	setIf(&a.RoutePolicy, p.RoutePolicy)
	setIf(&a.NotarySamplingPercent, p.NotarySamplingPercent)
	setIf(&a.NotaryFlush, p.NotaryFlush)
	setIf(&a.NotaryPayloadHashing, p.NotaryPayloadHashing)
	setIf(&a.ForensicSnapshot, p.ForensicSnapshot)
	setIf(&a.VPPFlowPolicy, p.VPPFlowPolicy)
	return a, nil
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// All returns the effective accords of levels 1..5, in that order.
func All(o Overrides) []Accord {
	out := make([]Accord, 0, MaxLevel)
	for l := MinLevel; l <= MaxLevel; l++ {
		a, _ := Effective(l, o) // l is always valid
		out = append(out, a)
	}
	return out
}

// OverridesFromTree reads the overrides under /kedge/accords/accord/config.
// The schema has already validated every value (enumerations, ranges), so
// reading cannot fail; unset leaves are not overrides. t is a snapshot the
// caller read from the store.
func OverridesFromTree(t *tree.Tree) Overrides {
	o := Overrides{}
	k := t.Root().Sub("kedge")
	if k == nil {
		return o
	}
	acc := k.Sub("accords")
	if acc == nil {
		return o
	}
	acc.Entries("accord", func(e *tree.Inst) bool {
		cfg := e.Sub("config")
		if cfg == nil {
			return true
		}
		lv := e.Keys()[0].UintVal()
		if !Valid(uint8(lv)) {
			return true
		}
		p := Patch{
			OverlayMode:           str(cfg.Get("overlay-mode")),
			KeepaliveSeconds:      num[uint16](cfg.Get("keepalive-seconds")),
			HealthCheckSeconds:    num[uint16](cfg.Get("health-check-seconds")),
			Handshake:             str(cfg.Get("handshake")),
			AllowedSessionTypes:   strs(cfg.Get("allowed-session-types")),
			UnderlayMutationTiers: strs(cfg.Get("underlay-mutation-tiers")),
			CompilerFrozen:        boolean(cfg.Get("compiler-frozen")),
			RoutePolicy:           str(cfg.Get("route-policy")),
			NotarySamplingPercent: num[uint8](cfg.Get("notary-sampling-percent")),
			NotaryFlush:           str(cfg.Get("notary-flush")),
			NotaryPayloadHashing:  boolean(cfg.Get("notary-payload-hashing")),
			ForensicSnapshot:      boolean(cfg.Get("forensic-snapshot")),
			VPPFlowPolicy:         str(cfg.Get("vpp-flow-policy")),
		}
		if !p.empty() {
			o[uint8(lv)] = p
		}
		return true
	})
	return o
}

func str(v tree.Value) *string {
	if !v.IsSet() {
		return nil
	}
	s := v.Str()
	return &s
}

func num[T uint8 | uint16](v tree.Value) *T {
	if !v.IsSet() {
		return nil
	}
	n := T(v.UintVal())
	return &n
}

func boolean(v tree.Value) *bool {
	if !v.IsSet() {
		return nil
	}
	b := v.BoolVal()
	return &b
}

func strs(v tree.Value) []string {
	if !v.IsSet() {
		return nil
	}
	out := []string{}
	for _, e := range v.Elems() {
		out = append(out, e.String())
	}
	return out
}

// Current returns the accord a reconciler should apply now: that of the
// more restrictive of the intended level (/kedge/posture/config/level,
// default 5) and the effective level the posture engine last published
// (/kedge/posture/state/effective-level). Taking the lower of the two
// means a reconciler that runs while a transition is under way never
// loosens ahead of the engine's plan: an escalation lowers the config
// level at once, and a de-escalation only counts once the engine has
// published the new effective level after its last step.
func Current(t *tree.Tree) Accord {
	level := MaxLevel
	if k := t.Root().Sub("kedge"); k != nil {
		if p := k.Sub("posture"); p != nil {
			if c := p.Sub("config"); c != nil {
				if v := c.Get("level"); v.IsSet() && Valid(uint8(v.UintVal())) {
					level = uint8(v.UintVal())
				}
			}
			if s := p.Sub("state"); s != nil {
				if v := s.Get("effective-level"); v.IsSet() && Valid(uint8(v.UintVal())) {
					level = min(level, uint8(v.UintVal()))
				}
			}
		}
	}
	a, _ := Effective(level, OverridesFromTree(t)) // level is valid
	return a
}
