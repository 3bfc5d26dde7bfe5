package accord

import (
	"slices"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
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
	UnderlayDriftMillis   *uint32
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
		p.CompilerFrozen == nil && p.UnderlayDriftMillis == nil && p.RoutePolicy == nil && p.NotarySamplingPercent == nil &&
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
	setIf(&a.UnderlayDriftMillis, p.UnderlayDriftMillis)
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
	for e := range kedgetree.Of(t).Kedge().Accords().Accord().All() {
		cfg := e.Config()
		lv, _ := e.Level()
		if !cfg.Exists() || !Valid(lv) {
			continue
		}
		p := Patch{
			OverlayMode:           str(cfg.OverlayMode()),
			KeepaliveSeconds:      ptr(cfg.KeepaliveSeconds()),
			HealthCheckSeconds:    ptr(cfg.HealthCheckSeconds()),
			Handshake:             str(cfg.Handshake()),
			AllowedSessionTypes:   cfg.AllowedSessionTypes(),
			UnderlayMutationTiers: strs(cfg.UnderlayMutationTiers()),
			CompilerFrozen:        ptr(cfg.CompilerFrozen()),
			UnderlayDriftMillis:   ptr(cfg.UnderlayDriftIntervalMs()),
			RoutePolicy:           str(cfg.RoutePolicy()),
			NotarySamplingPercent: ptr(cfg.NotarySamplingPercent()),
			NotaryFlush:           str(cfg.NotaryFlush()),
			NotaryPayloadHashing:  ptr(cfg.NotaryPayloadHashing()),
			ForensicSnapshot:      ptr(cfg.ForensicSnapshot()),
			VPPFlowPolicy:         str(cfg.VppFlowPolicy()),
		}
		if !p.empty() {
			o[lv] = p
		}
	}
	return o
}

// str is a set enumeration leaf as a *string, nil when unset.
func str[E ~string](v E, set bool) *string {
	if !set {
		return nil
	}
	s := string(v)
	return &s
}

// ptr is a set leaf's value, nil when unset.
func ptr[T any](v T, set bool) *T {
	if !set {
		return nil
	}
	return &v
}

// strs converts a leaf-list of enumeration values, keeping nil as nil.
func strs[E ~string](vs []E) []string {
	if vs == nil {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
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
	p := kedgetree.Of(t).Kedge().Posture()
	if v, ok := p.Config().Level(); ok && Valid(v) {
		level = v
	}
	if v, ok := p.State().EffectiveLevel(); ok && Valid(v) {
		level = min(level, v)
	}
	a, _ := Effective(level, OverridesFromTree(t)) // level is valid
	return a
}

// ConfigLevel returns the intended level, /kedge/posture/config/level,
// or the YANG default (5) when it is unset. The caller holds the store's
// read lock.
func ConfigLevel(t *tree.Tree) uint8 {
	if v, ok := kedgetree.Of(t).Kedge().Posture().Config().Level(); ok && Valid(v) {
		return v
	}
	return MaxLevel
}
