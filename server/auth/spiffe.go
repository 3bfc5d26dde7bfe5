package auth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// spiffeRules map SPIFFE IDs to tiers: exact IDs, and path prefixes
// written with a trailing "/*" (spiffe://example.org/ops/* covers every ID
// under /ops; spiffe://example.org/* the whole trust domain).
type spiffeRules struct {
	exact    map[string]Tier
	prefixes []spiffePrefix // longest first
}

type spiffePrefix struct {
	prefix string // with the trailing slash
	tier   Tier
}

func parseSPIFFE(m map[string]Tier) (spiffeRules, error) {
	r := spiffeRules{exact: map[string]Tier{}}
	for pat, raw := range m {
		t, err := ParseTier(string(raw))
		if err != nil {
			return spiffeRules{}, fmt.Errorf("spiffe %q: %w", pat, err)
		}
		if base, ok := strings.CutSuffix(pat, "/*"); ok {
			// The base is a trust domain or a full ID; both parse as IDs.
			id, err := spiffeid.FromString(base)
			if err != nil {
				return spiffeRules{}, fmt.Errorf("spiffe pattern %q: %w", pat, err)
			}
			r.prefixes = append(r.prefixes, spiffePrefix{prefix: id.String() + "/", tier: t})
			continue
		}
		id, err := spiffeid.FromString(pat)
		if err != nil {
			return spiffeRules{}, fmt.Errorf("spiffe id %q: %w", pat, err)
		}
		if id.Path() == "" {
			return spiffeRules{}, fmt.Errorf("spiffe id %q: a trust domain alone names no workload; write %s/* to cover all of it", pat, pat)
		}
		r.exact[id.String()] = t
	}
	sort.Slice(r.prefixes, func(i, j int) bool { return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix) })
	return r, nil
}

// SPIFFETier maps a verified SPIFFE ID to a tier: an exact entry wins,
// else the longest "/*" pattern that covers the ID. IDs are compared in
// their canonical form, so a pattern never matches across a path segment
// boundary (spiffe://td/ops/* does not cover spiffe://td/opsx).
func (p *Policy) SPIFFETier(id string) (Tier, bool) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return "", false
	}
	s := sid.String()
	if t, ok := p.spiffe.exact[s]; ok {
		return t, true
	}
	for _, pr := range p.spiffe.prefixes {
		if strings.HasPrefix(s, pr.prefix) {
			return pr.tier, true
		}
	}
	return "", false
}
