package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "src-plugin")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	o := Options{Binary: bin, BinDir: filepath.Join(dir, "bin"), ConfDir: filepath.Join(dir, "net.d"),
		Socket: "/run/kedge/test.sock", Pools: []string{"10.42.0.0/16"}, MTU: 1400}
	for range 2 { // idempotent: a second install replaces both files in place
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "bin", "kedge"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", st, err)
	}
	var got map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "net.d", "10-kedge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"cniVersion": "1.1.0", "name": "kedge", "plugins": []any{map[string]any{
		"type": "kedge", "socket": "/run/kedge/test.sock", "mtu": float64(1400),
		"ipam": map[string]any{"type": "kedge", "pools": []any{"10.42.0.0/16"}},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("conflist (-want +got):\n%s", diff)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

func TestInstallMissingBinary(t *testing.T) {
	dir := t.TempDir()
	err := Install(Options{Binary: filepath.Join(dir, "nope"), BinDir: filepath.Join(dir, "bin"), ConfDir: filepath.Join(dir, "net.d")})
	if err == nil {
		t.Fatal("want error for a missing binary")
	}
	if _, err := os.Stat(filepath.Join(dir, "net.d", "10-kedge.conflist")); !os.IsNotExist(err) {
		t.Fatalf("conflist written without a plugin: %v", err)
	}
}

func TestMainFlags(t *testing.T) {
	if err := Main([]string{"--bin-dir", t.TempDir(), "extra"}, os.Stderr); err == nil {
		t.Fatal("want error for extra arguments")
	}
	if err := Main([]string{"--no-such-flag"}, os.Stderr); err == nil {
		t.Fatal("want error for an unknown flag")
	}
}
