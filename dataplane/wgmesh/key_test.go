package wgmesh

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	priv, pub, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	if pub != priv.PublicKey() {
		t.Errorf("public key does not match private key")
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	again, _, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if again != priv {
		t.Errorf("second start returned a different key")
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"group readable", "", 0o640},
		{"world readable", "", 0o604},
		{"not base64", "hello\n", 0o600},
		{"short key", "AAAA\n", 0o600},
		{"all zero", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			content := tt.content
			if content == "" {
				k, err := GenerateKey()
				if err != nil {
					t.Fatal(err)
				}
				content = k.String() + "\n"
			}
			path := filepath.Join(dir, KeyFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKey(dir)
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("LoadOrCreateKey = %v, want ErrKeyFile", err)
			}
			// The bad file must be left for the operator, not replaced.
			got, _ := os.ReadFile(path)
			if string(got) != content {
				t.Errorf("key file was rewritten")
			}
		})
	}
}

// TestKeyMatchesWireGuard checks Key against WireGuard's own key type: the
// same public key for the same private key, and the same text both ways.
func TestKeyMatchesWireGuard(t *testing.T) {
	for range 20 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
			t.Fatalf("key %s is not clamped", k)
		}
		wk := wgtypes.Key(k)
		if got, want := k.PublicKey(), Key(wk.PublicKey()); got != want {
			t.Fatalf("public key of %s = %s, wgtypes says %s", k, got, want)
		}
		if k.String() != wk.String() {
			t.Fatalf("text %s, wgtypes %s", k, wk)
		}
		back, err := ParseKey(wk.String())
		if err != nil || back != k {
			t.Fatalf("ParseKey(%s) = %s, %v", wk, back, err)
		}
	}
	for _, bad := range []string{"", "not base64!", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrBadKeyText) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKeyText", bad, err)
		}
	}
}
