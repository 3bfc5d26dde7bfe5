package notary

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files in the notary directory.
const (
	// KeyFile holds the note signer key (Ed25519), 0600.
	KeyFile = "key"
	// PublicKeyFile holds the verifier key, for operators and verify.
	PublicKeyFile = "key.pub"
)

// ErrKeyPermissions: the signing key file is readable or writable by group
// or others.
var ErrKeyPermissions = errors.New("notary key file is accessible to group or others")

// Origin returns the log origin (and key name) of a node's notary: the
// checkpoints' first line. Characters a note key name cannot hold
// (whitespace, '+') become '-'.
func Origin(node string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '+' || r <= ' ' || r == 0x7f {
			return '-'
		}
		return r
	}, node)
	if clean == "" {
		clean = "unnamed"
	}
	return "kedge.notary/" + clean
}

// Keys are a notary's signing and verifying keys.
type Keys struct {
	Signer   note.Signer
	Verifier note.Verifier
	// VerifierKey is the encoded verifier key (name+hash+key).
	VerifierKey string
}

// LoadOrCreateKey reads the notary's signing key from dir, creating an
// Ed25519 key named origin on first start. A key file that group or others
// may read or write is refused (ErrKeyPermissions): whoever reads it can
// forge checkpoints.
func LoadOrCreateKey(dir, origin string) (Keys, error) {
	path := filepath.Join(dir, KeyFile)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createKey(dir, origin)
	case err != nil:
		return Keys{}, fmt.Errorf("read notary key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Keys{}, fmt.Errorf("read notary key %s: %w (mode %#o): run chmod 600 %s", path, ErrKeyPermissions, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Keys{}, fmt.Errorf("read notary key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return Keys{}, fmt.Errorf("read notary key %s: %w", path, err)
	}
	if s.Name() != origin {
		return Keys{}, fmt.Errorf("read notary key %s: it is named %q, this node's log is %q (node renamed? move the notary directory aside to start a new log)", path, s.Name(), origin)
	}
	vkey, err := verifierKey(path, strings.TrimSpace(string(b)))
	if err != nil {
		return Keys{}, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Keys{}, fmt.Errorf("read notary key %s: %w", path, err)
	}
	return Keys{Signer: s, Verifier: v, VerifierKey: vkey}, nil
}

func createKey(dir, origin string) (Keys, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return Keys{}, fmt.Errorf("generate notary key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("create notary dir: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Keys{}, fmt.Errorf("create notary key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return Keys{}, fmt.Errorf("write notary key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Keys{}, fmt.Errorf("sync notary key: %w", err)
	}
	if err := f.Close(); err != nil {
		return Keys{}, fmt.Errorf("write notary key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return Keys{}, fmt.Errorf("write notary public key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Keys{}, fmt.Errorf("install notary key: %w", err)
	}
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return Keys{}, fmt.Errorf("sync notary dir: %w", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return Keys{}, fmt.Errorf("use notary key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Keys{}, fmt.Errorf("use notary key: %w", err)
	}
	return Keys{Signer: s, Verifier: v, VerifierKey: vkey}, nil
}

// verifierKey derives the encoded verifier key from an encoded signer key
// ("PRIVATE+KEY+name+hash+base64(alg|seed)"), and checks it against
// key.pub when that exists.
func verifierKey(path, skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", fmt.Errorf("read notary key %s: malformed", path)
	}
	pub, err := ed25519Public(parts[4])
	if err != nil {
		return "", fmt.Errorf("read notary key %s: %w", path, err)
	}
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("read notary key %s: %w", path, err)
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), PublicKeyFile)); err == nil && strings.TrimSpace(string(b)) != vkey {
		return "", fmt.Errorf("read notary key %s: %s does not hold its public key", path, PublicKeyFile)
	}
	return vkey, nil
}

// LoadVerifier reads the verifier key a notary directory publishes.
func LoadVerifier(dir string) (note.Verifier, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return nil, "", fmt.Errorf("read notary public key: %w", err)
	}
	vkey := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("read notary public key %s: %w", filepath.Join(dir, PublicKeyFile), err)
	}
	return v, vkey, nil
}

// algEd25519 is the note format's algorithm byte for Ed25519 keys.
const algEd25519 = 1

// ed25519Public decodes the base64 "alg | seed" of a note signer key and
// returns its public key.
func ed25519Public(b64 string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, errors.New("not an Ed25519 note key")
	}
	return ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey), nil
}
