package auth

import (
	"strings"
	"testing"
)

func TestSPIFFETier(t *testing.T) {
	p, err := ParsePolicy([]byte(`
tiers:
  master: {write: ["/"]}
spiffe:
  spiffe://kedge.test/ops/alice: master
  spiffe://kedge.test/ops/*: operator
  spiffe://kedge.test/ops/sre/*: site-owner
  spiffe://kedge.test/*: observer
`))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]Tier{
		"spiffe://kedge.test/ops/alice":     Master,    // exact beats prefix
		"spiffe://kedge.test/ops/bob":       Operator,  // prefix
		"spiffe://kedge.test/ops/sre/carol": SiteOwner, // longest prefix
		"spiffe://kedge.test/opsx":          Observer,  // not under /ops/
		"spiffe://kedge.test/node/a":        Observer,  // trust-domain pattern
	} {
		got, ok := p.SPIFFETier(id)
		if !ok || got != want {
			t.Errorf("SPIFFETier(%s) = %q, %t; want %q", id, got, ok, want)
		}
	}
	for _, id := range []string{"spiffe://other.test/ops/alice", "not-an-id", "spiffe://kedge.test/ops/../x"} {
		if got, ok := p.SPIFFETier(id); ok {
			t.Errorf("SPIFFETier(%s) = %q, want no tier", id, got)
		}
	}
	// Without a spiffe section nobody has a tier.
	if _, ok := DefaultPolicy().SPIFFETier("spiffe://kedge.test/ops/alice"); ok {
		t.Error("built-in policy maps a SPIFFE ID")
	}
}

func TestSPIFFEPolicyErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"spiffe: {\"spiffe://kedge.test/a\": boss}":    "parse tier",
		"spiffe: {\"http://kedge.test/a\": master}":    "spiffe id",
		"spiffe: {\"spiffe://kedge.test\": master}":    "trust domain alone",
		"spiffe: {\"spiffe://Bad_TD!/a/*\": master}":   "spiffe pattern",
		"spiffe: {\"spiffe://kedge.test/a/\": master}": "spiffe id",
	} {
		_, err := ParsePolicy([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", doc, err, want)
		}
	}
}
