package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for new hashes. OWASP's 2023 minimum (19 MiB, two
// passes, one lane) keeps a verification near 30-50 ms on a small node;
// the parameters travel in the PHC string, so raising them later does
// not break existing hashes.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// ErrBadHash marks a stored hash that cannot be parsed.
var ErrBadHash = errors.New("bad password hash")

// HashPassword returns a salted argon2id hash of pw in PHC string form:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> (unpadded standard base64).
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id PHC string.
type phc struct {
	mem, time uint32
	threads   uint8
	salt, key []byte
}

func parsePHC(s string) (phc, error) {
	var p phc
	f := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, fmt.Errorf("parse hash: %w: not an argon2id PHC string", ErrBadHash)
	}
	var v int
	if _, err := fmt.Sscanf(f[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, fmt.Errorf("parse hash: %w: version %q", ErrBadHash, f[2])
	}
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.mem, &p.time, &p.threads); err != nil {
		return p, fmt.Errorf("parse hash: %w: parameters %q", ErrBadHash, f[3])
	}
	// Bound the parameters so a hostile users file cannot make one check
	// allocate gigabytes or spin for minutes.
	if p.mem < 8 || p.mem > 1<<20 || p.time < 1 || p.time > 16 || p.threads < 1 {
		return p, fmt.Errorf("parse hash: %w: parameters out of range %q", ErrBadHash, f[3])
	}
	var err error
	b64 := base64.RawStdEncoding
	if p.salt, err = b64.DecodeString(f[4]); err != nil || len(p.salt) < 8 {
		return p, fmt.Errorf("parse hash: %w: salt", ErrBadHash)
	}
	if p.key, err = b64.DecodeString(f[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, fmt.Errorf("parse hash: %w: key", ErrBadHash)
	}
	return p, nil
}

// VerifyPassword reports whether pw matches the PHC hash, comparing in
// constant time.
func VerifyPassword(hash, pw string) (bool, error) {
	p, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), p.salt, p.time, p.mem, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// RandomPassword returns n characters drawn uniformly from an
// unambiguous alphabet with crypto/rand.
func RandomPassword(n int) (string, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	out := make([]byte, n)
	buf := make([]byte, 1)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		// Rejection sampling keeps the distribution uniform.
		if int(buf[0]) >= 256-256%len(alphabet) {
			continue
		}
		out[i] = alphabet[int(buf[0])%len(alphabet)]
		i++
	}
	return string(out), nil
}
