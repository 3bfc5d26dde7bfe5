package wgmesh

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the private key's file name inside the data dir.
const KeyFile = "wireguard.key"

// ErrKeyFile means the key file exists but cannot be trusted or read.
var ErrKeyFile = errors.New("unusable key file")

// LoadOrCreateKey returns the node's private and public key, kept in
// dataDir/wireguard.key (base64, mode 0600). On first start it generates
// one. A key file readable or writable by group or others, or holding
// anything but one base64 key, is refused rather than repaired: someone else
// may have seen or planted it.
func LoadOrCreateKey(dataDir string) (Key, Key, error) {
	path := filepath.Join(dataDir, KeyFile)
	k, err := readKey(path)
	if err == nil {
		return k, k.PublicKey(), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, Key{}, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Key{}, Key{}, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	k, err = GenerateKey()
	if err != nil {
		return Key{}, Key{}, fmt.Errorf("generate private key: %w", err)
	}
	if err := writeKey(path, k); err != nil {
		return Key{}, Key{}, err
	}
	// Read back: if another process won the race, its key is the one on disk.
	if k, err = readKey(path); err != nil {
		return Key{}, Key{}, err
	}
	return k, k.PublicKey(), nil
}

func readKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Key{}, err
		}
		return Key{}, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("stat key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("%w: %s has mode %04o, want 0600 (fix with chmod 600)", ErrKeyFile, path, perm)
	}
	buf := make([]byte, 128)
	n, err := f.Read(buf)
	if err != nil {
		return Key{}, fmt.Errorf("%w: read %s: %v", ErrKeyFile, path, err)
	}
	k, err := ParseKey(string(bytes.TrimSpace(buf[:n])))
	if err != nil {
		return Key{}, fmt.Errorf("%w: %s does not hold a base64 key", ErrKeyFile, path)
	}
	if k == (Key{}) {
		return Key{}, fmt.Errorf("%w: %s holds an all-zero key", ErrKeyFile, path)
	}
	return k, nil
}

// writeKey writes through a temporary file and a rename, so a crash never
// leaves a half-written key that the next start would refuse.
func writeKey(path string, k Key) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".wireguard.key.*")
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod key file: %w", err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		// Link, not Rename: a key another process created meanwhile wins
		// instead of being overwritten.
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("install key file %s: %w", path, err)
	}
	return nil
}
