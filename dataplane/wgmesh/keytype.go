package wgmesh

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeyLen is the length of a WireGuard key (Curve25519) in bytes.
const KeyLen = 32

// Key is a WireGuard private or public key. It is a plain array (no
// dependency on wgctrl), the same shape as wgctrl's wgtypes.Key, so the
// device implementation converts it without copying.
type Key [KeyLen]byte

// ErrBadKeyText: a string is not the base64 of a 32-byte key.
var ErrBadKeyText = errors.New("not a base64 WireGuard key")

// GenerateKey returns a new private key from crypto/rand, clamped as
// Curve25519 (and WireGuard's key files) expects.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// ParseKey parses a key's base64 text.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != KeyLen {
		return Key{}, fmt.Errorf("parse key: %w", ErrBadKeyText)
	}
	return Key(b), nil
}

// PublicKey returns the public key of private key k.
func (k Key) PublicKey() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		return Key{} // NewPrivateKey fails only on a wrong length
	}
	return Key(priv.PublicKey().Bytes())
}

// String is the key's base64 text, the form WireGuard tools and the tree
// use.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is the zero key (no key).
func (k Key) IsZero() bool { return k == Key{} }
