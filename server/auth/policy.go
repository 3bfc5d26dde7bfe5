package auth

import (
	"fmt"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/fileperm"
)

// PolicyFile is the YAML form of the policy (see DefaultPolicyYAML).
type PolicyFile struct {
	// Tiers gives each tier the data path prefixes it may Set (write) and
	// the ones carved out of them (deny). A tier that is not listed may
	// not Set anything.
	Tiers map[Tier]TierRules `yaml:"tiers"`
	// Certificates maps a verified client certificate identity (CN, else
	// first DNS SAN, else first URI SAN) to a tier.
	Certificates map[string]Tier `yaml:"certificates"`
	// Unix maps unix socket peers to tiers; a uid match wins over a gid
	// match.
	Unix UnixRules `yaml:"unix"`
	// GRIBI says which tiers may inject routes with gRIBI.
	GRIBI GRIBIRules `yaml:"gribi"`
	// SPIFFE maps SPIFFE IDs (Shellstream sessions) to tiers; see
	// SPIFFETier for how patterns match.
	SPIFFE map[string]Tier `yaml:"spiffe"`
}

// TierRules are one tier's Set permissions.
type TierRules struct {
	Write []string `yaml:"write"`
	Deny  []string `yaml:"deny"`
}

// UnixRules map unix peer credentials to tiers.
type UnixRules struct {
	UIDs map[uint32]Tier `yaml:"uids"`
	GIDs map[uint32]Tier `yaml:"gids"`
}

// DefaultPolicyYAML is the built-in policy used without --policy.
const DefaultPolicyYAML = `# Kedge built-in policy.
tiers:
  master:
    write: ["/"]
  site-owner:
    write: ["/"]
    deny: ["/kedge/accords", "/kedge/system"]
  operator:
    write:
      - /kedge/routes
      - /kedge/pods
      - /kedge/mesh/peers
      - /kedge/underlay/mutations
  observer:
    write: []
certificates: {}
unix:
  uids:
    0: master
  gids: {}
# The lowest tier that may inject routes with gRIBI Modify and Flush.
gribi:
  write: operator
`

// Policy is a checked, compiled policy. It is immutable.
type Policy struct {
	tiers      map[Tier]compiledRules
	certs      map[string]Tier
	unix       UnixRules
	gribiWrite Tier
	spiffe     spiffeRules
}

type compiledRules struct {
	write, deny []rule
}

// rule is a parsed path prefix; a nil key map on an element matches any
// keys, and a key whose value is "*" matches any value.
type rule struct {
	text  string
	elems []*gpb.PathElem
}

// DefaultPolicy returns the built-in policy.
func DefaultPolicy() *Policy {
	p, err := ParsePolicy([]byte(DefaultPolicyYAML))
	if err != nil {
		// The built-in text is a constant covered by tests.
		return &Policy{}
	}
	return p
}

// LoadPolicy reads a policy file. Anyone who can write it can make
// themselves master, so a file group or others may write (or that
// another user owns) is refused; reading is allowed, since the policy
// holds no secret and is often shipped as a world-readable ConfigMap.
func LoadPolicy(path string) (*Policy, error) {
	b, err := fileperm.ReadTrusted(path, "policy file")
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses and checks a policy document.
func ParsePolicy(b []byte) (*Policy, error) {
	var pf PolicyFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	p := &Policy{tiers: map[Tier]compiledRules{}, certs: map[string]Tier{}, gribiWrite: defaultGRIBIWrite}
	if pf.GRIBI.Write != "" {
		t, err := ParseTier(string(pf.GRIBI.Write))
		if err != nil {
			return nil, fmt.Errorf("parse policy: gribi write: %w", err)
		}
		p.gribiWrite = t
	}
	for raw, r := range pf.Tiers {
		t, err := ParseTier(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse policy: %w", err)
		}
		var cr compiledRules
		for _, s := range r.Write {
			ru, err := parseRule(s)
			if err != nil {
				return nil, fmt.Errorf("parse policy: tier %s: %w", t, err)
			}
			cr.write = append(cr.write, ru)
		}
		for _, s := range r.Deny {
			ru, err := parseRule(s)
			if err != nil {
				return nil, fmt.Errorf("parse policy: tier %s: %w", t, err)
			}
			cr.deny = append(cr.deny, ru)
		}
		p.tiers[t] = cr
	}
	for name, raw := range pf.Certificates {
		t, err := ParseTier(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse policy: certificate %q: %w", name, err)
		}
		p.certs[name] = t
	}
	p.unix = UnixRules{UIDs: map[uint32]Tier{}, GIDs: map[uint32]Tier{}}
	for uid, raw := range pf.Unix.UIDs {
		t, err := ParseTier(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse policy: uid %d: %w", uid, err)
		}
		p.unix.UIDs[uid] = t
	}
	for gid, raw := range pf.Unix.GIDs {
		t, err := ParseTier(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse policy: gid %d: %w", gid, err)
		}
		p.unix.GIDs[gid] = t
	}
	sp, err := parseSPIFFE(pf.SPIFFE)
	if err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	p.spiffe = sp
	return p, nil
}

func parseRule(s string) (rule, error) {
	elems, err := parsePath(s)
	if err != nil {
		return rule{}, fmt.Errorf("parse rule: %w", err)
	}
	return rule{text: s, elems: elems}, nil
}

// parsePath parses a gNMI string path and drops RFC 7951 module
// qualifiers from element names: the tree accepts /kedge:kedge/accords
// as /kedge/accords, so the policy must see them as the same path or a
// qualified name would slip past a deny rule.
func parsePath(s string) ([]*gpb.PathElem, error) {
	elems, err := tree.ParsePath(s)
	if err != nil {
		return nil, err
	}
	for _, e := range elems {
		if i := strings.IndexByte(e.Name, ':'); i >= 0 {
			e.Name = e.Name[i+1:]
		}
	}
	return elems, nil
}

// CertificateTier maps a certificate identity to a tier.
func (p *Policy) CertificateTier(name string) (Tier, bool) {
	t, ok := p.certs[name]
	return t, ok
}

// UnixTier maps peer credentials to a tier; uid rules win over gid rules.
func (p *Policy) UnixTier(uid, gid uint32) (Tier, string, bool) {
	if t, ok := p.unix.UIDs[uid]; ok {
		return t, fmt.Sprintf("uid:%d", uid), true
	}
	if t, ok := p.unix.GIDs[gid]; ok {
		return t, fmt.Sprintf("gid:%d", gid), true
	}
	return "", "", false
}

// MayWrite reports whether tier may Set the data path (gNMI string
// form); when it may not, the reason names the rule that decided.
func (p *Policy) MayWrite(t Tier, path string) (bool, string) {
	elems, err := parsePath(path)
	if err != nil {
		return false, fmt.Sprintf("unparsable path: %v", err)
	}
	r := p.tiers[t]
	allowed := false
	for _, w := range r.write {
		if covers(w.elems, elems) {
			allowed = true
			break
		}
	}
	if !allowed {
		return false, "no write rule covers it"
	}
	// A write at or above a denied prefix would change the denied subtree
	// (deleting /kedge removes /kedge/accords), so overlap in either
	// direction denies.
	for _, d := range r.deny {
		if overlaps(d.elems, elems) {
			return false, fmt.Sprintf("it overlaps denied prefix %s", d.text)
		}
	}
	return true, ""
}

// MayWriteAnything reports whether tier has any write rule at all.
func (p *Policy) MayWriteAnything(t Tier) bool { return len(p.tiers[t].write) > 0 }

// covers reports whether the rule prefix contains every path under p:
// the rule is no longer than p and each rule element matches p's
// element for every entry p selects.
func covers(rule, p []*gpb.PathElem) bool {
	if len(rule) > len(p) {
		return false
	}
	for i, re := range rule {
		pe := p[i]
		if re.Name != pe.Name {
			return false
		}
		for k, rv := range re.Key {
			if rv == "*" {
				continue
			}
			// A path element without this key (or with a wildcard)
			// selects entries the rule does not name.
			if pv, ok := pe.Key[k]; !ok || pv != rv {
				return false
			}
		}
	}
	return true
}

// overlaps reports whether the subtrees named by a and b share any node:
// one is a prefix of the other, with keys that can select the same entry.
func overlaps(a, b []*gpb.PathElem) bool {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		// Wildcards never reach a Set through the target, but if one did
		// it must count as touching the denied subtree.
		if a[i].Name == "..." || b[i].Name == "..." {
			return true
		}
		if a[i].Name != b[i].Name && a[i].Name != "*" && b[i].Name != "*" {
			return false
		}
		for k, av := range a[i].Key {
			bv, ok := b[i].Key[k]
			if ok && av != "*" && bv != "*" && av != bv {
				return false
			}
		}
	}
	return true
}
