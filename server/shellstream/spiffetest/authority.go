// Package spiffetest is a SPIFFE trust domain for tests: a CA that issues
// X.509-SVIDs and JWT-SVIDs, and a Workload API server (the public
// workload proto of go-spiffe) on a unix socket that hands them out,
// streams the bundles and validates JWT-SVIDs, counting ValidateJWTSVID
// calls so tests can tell a cached handshake from a re-verified one. It
// also forges the malformed tokens the handshake must refuse.
package spiffetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Authority is one trust domain's CA: an X.509 root and a JWT signing
// key. It is immutable after NewAuthority and safe for concurrent use.
type Authority struct {
	TD     spiffeid.TrustDomain
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	jwtKey *ecdsa.PrivateKey
	KeyID  string
}

// NewAuthority creates a trust domain such as "kedge.test".
func NewAuthority(td string) (*Authority, error) {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("create authority: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create authority: %w", err)
	}
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create authority: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"kedge test"}, CommonName: td + " root"},
		URIs:                  []*url.URL{t.ID().URL()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create authority: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create authority: %w", err)
	}
	kid := make([]byte, 8)
	rand.Read(kid)
	return &Authority{TD: t, caCert: cert, caKey: caKey, jwtKey: jwtKey, KeyID: base64.RawURLEncoding.EncodeToString(kid)}, nil
}

// ID returns the SPIFFE ID path in the trust domain.
func (a *Authority) ID(path string) spiffeid.ID {
	id, err := spiffeid.FromPath(a.TD, path)
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// X509Bundle is the trust domain's X.509 bundle.
func (a *Authority) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(a.TD, []*x509.Certificate{a.caCert})
}

// JWTBundle is the trust domain's JWT bundle.
func (a *Authority) JWTBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(a.TD, map[string]crypto.PublicKey{a.KeyID: &a.jwtKey.PublicKey})
}

// X509SVID issues an X.509-SVID for id valid for ttl.
func (a *Authority) X509SVID(id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid: %w", err)
	}
	return a.x509SVIDWithKey(id, key, ttl)
}

func (a *Authority) x509SVIDWithKey(id spiffeid.ID, key *ecdsa.PrivateKey, ttl time.Duration) (*x509svid.SVID, error) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		URIs:         []*url.URL{id.URL()},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, &key.PublicKey, a.caKey)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid: %w", err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// Claims are a JWT-SVID's claims; zero times take defaults (issued now,
// expiring in five minutes).
type Claims struct {
	Subject   spiffeid.ID
	Audience  []string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time
}

func (c Claims) jwt() jwt.Claims {
	now := time.Now()
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(5 * time.Minute)
	}
	out := jwt.Claims{Subject: c.Subject.String(), Audience: c.Audience, IssuedAt: jwt.NewNumericDate(c.IssuedAt), Expiry: jwt.NewNumericDate(c.Expiry)}
	if !c.NotBefore.IsZero() {
		out.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	return out
}

// JWTSVID issues a JWT-SVID (ES256, the authority's key id).
func (a *Authority) JWTSVID(c Claims) (string, error) {
	return signJWT(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: a.jwtKey, KeyID: a.KeyID}}, c.jwt())
}

func signJWT(key jose.SigningKey, c jwt.Claims) (string, error) {
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return tok, nil
}

// Forgery names a way to forge or mangle a JWT-SVID.
type Forgery string

// The forgeries the handshake must refuse.
const (
	AlgNone       Forgery = "alg-none"       // unsigned, "alg":"none"
	HS256WithPub  Forgery = "hs256-with-pub" // HMAC keyed with the public key's bytes
	UnknownKid    Forgery = "unknown-kid"    // signed by a key the bundle lacks
	OtherDomain   Forgery = "other-domain"   // valid, but from a trust domain we do not trust
	WrongAudience Forgery = "wrong-audience" // valid, for another audience
	Expired       Forgery = "expired"        // expired an hour ago
	NotYetValid   Forgery = "not-yet-valid"  // nbf an hour ahead
	Truncated     Forgery = "truncated"      // signature cut short
	Garbage       Forgery = "garbage"        // not a JWS at all
)

// Forgeries lists every Forgery.
var Forgeries = []Forgery{AlgNone, HS256WithPub, UnknownKid, OtherDomain, WrongAudience, Expired, NotYetValid, Truncated, Garbage}

// Forge returns a token for subject and audience broken as f says.
func (a *Authority) Forge(f Forgery, subject spiffeid.ID, audience string) (string, error) {
	c := Claims{Subject: subject, Audience: []string{audience}}
	now := time.Now()
	switch f {
	case AlgNone:
		hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": a.KeyID})
		body, _ := json.Marshal(c.jwt())
		return b64(hdr) + "." + b64(body) + ".", nil
	case HS256WithPub:
		pub, err := x509.MarshalPKIXPublicKey(&a.jwtKey.PublicKey)
		if err != nil {
			return "", err
		}
		hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": a.KeyID})
		body, _ := json.Marshal(c.jwt())
		signing := b64(hdr) + "." + b64(body)
		mac := hmac.New(sha256.New, pub)
		mac.Write([]byte(signing))
		return signing + "." + b64(mac.Sum(nil)), nil
	case UnknownKid:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		return signJWT(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "not-in-the-bundle"}}, c.jwt())
	case OtherDomain:
		other, err := NewAuthority("elsewhere.test")
		if err != nil {
			return "", err
		}
		return other.JWTSVID(Claims{Subject: other.ID(subject.Path()), Audience: []string{audience}})
	case WrongAudience:
		c.Audience = []string{"someone-else"}
	case Expired:
		c.IssuedAt, c.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour)
	case NotYetValid:
		c.NotBefore, c.Expiry = now.Add(time.Hour), now.Add(2*time.Hour)
	case Truncated:
		t, err := a.JWTSVID(c)
		if err != nil {
			return "", err
		}
		return t[:len(t)-10], nil
	case Garbage:
		return "this is not a token", nil
	default:
		return "", fmt.Errorf("forge: unknown forgery %q", f)
	}
	return a.JWTSVID(c)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
