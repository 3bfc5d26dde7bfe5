package listen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/guildhouse-co/kedge/server/fileperm"
)

// ErrInsecureNonLoopback refuses plaintext TCP off the loopback.
var ErrInsecureNonLoopback = errors.New("--insecure (plaintext TCP) is only allowed on a loopback address")

// IsLoopback reports whether the host:port address only listens on the
// loopback: a loopback IP or "localhost". An empty host (all interfaces)
// or any other name is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// TLSFiles name the operator's TLS material; all empty means "generate".
type TLSFiles struct {
	Cert, Key, CA string
}

// ServerTLS builds the TCP listener's TLS configuration. Without a cert
// and key it uses (creating on first start) a self-signed ECDSA P-256
// certificate in dir for names; with a CA it requires and verifies client
// certificates (mTLS). generated reports the path of a self-signed
// certificate it used, empty otherwise.
func ServerTLS(f TLSFiles, dir string, names []string) (cfg *tls.Config, generated string, err error) {
	var cert tls.Certificate
	switch {
	case f.Cert != "" && f.Key != "":
		if cert, err = loadKeyPair(f.Cert, f.Key); err != nil {
			return nil, "", err
		}
	case f.Cert != "" || f.Key != "":
		return nil, "", errors.New("load tls key pair: --tls-cert and --tls-key go together")
	default:
		certPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		if err := ensureSelfSigned(certPath, keyPath, names); err != nil {
			return nil, "", err
		}
		if cert, err = loadKeyPair(certPath, keyPath); err != nil {
			return nil, "", err
		}
		generated = certPath
	}
	cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		// Whoever can write the CA bundle can mint client certificates the
		// policy maps to any tier.
		pem, err := fileperm.ReadTrusted(f.CA, "TLS client CA")
		if err != nil {
			return nil, "", err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("read tls ca %s: no PEM certificates", f.CA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, generated, nil
}

// loadKeyPair loads a certificate and its private key, refusing a key
// file group or others can read or write (fileperm).
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	keyPEM, err := fileperm.ReadSecret(keyPath, "TLS key")
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read tls certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load tls key pair %s, %s: %w", certPath, keyPath, err)
	}
	return cert, nil
}

// ensureSelfSigned writes a self-signed server certificate and its 0600
// key unless a pair exists that still covers names and is not about to
// expire (a renamed node or an old certificate gets a new one).
func ensureSelfSigned(certPath, keyPath string, names []string) error {
	if reusable(certPath, keyPath, names) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return fmt.Errorf("create tls dir: %w", err)
	}
	certPEM, keyPEM, err := SelfSigned(names, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	// Remove first: WriteFile keeps the mode of an existing file, and the
	// key must end up 0600 whatever was there.
	for _, p := range []string{keyPath, certPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace tls files: %w", err)
		}
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write tls key: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("write tls cert: %w", err)
	}
	return nil
}

func reusable(certPath, keyPath string, names []string) bool {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(c.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, n := range append([]string{"127.0.0.1", "::1", "localhost"}, names...) {
		if n != "" && c.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// SelfSigned returns a PEM certificate and PKCS#8 key, ECDSA P-256,
// valid for 127.0.0.1, ::1, localhost and the given extra names.
func SelfSigned(names []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kedge-daemon", Organization: []string{"Kedge self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	for _, n := range names {
		if n == "" || n == "localhost" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode tls key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
