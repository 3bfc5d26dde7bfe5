package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kedge.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\ndata-dir: /from/file\nnetns: blue\nmax-msg-bytes: 1024\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Parse([]string{"--config", file, "--listen", "127.0.0.1:2222", "--insecure"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Listen = "127.0.0.1:2222" // flag beats file
	want.DataDir = "/from/file"    // file beats default
	want.NetNS = "blue"
	want.MaxMsgBytes = 1024
	want.Insecure = true
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if _, err := Parse([]string{"--config", file, "--nope"}, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
	os.WriteFile(file, []byte("lisen: x\n"), 0o600)
	if _, err := Parse([]string{"--config", file}, io.Discard); err == nil {
		t.Fatal("unknown config key accepted")
	}
}

func TestResolve(t *testing.T) {
	host := func() (string, error) { return "node-7", nil }
	ok := func(string) error { return nil }
	no := func(string) error { return errors.New("read-only") }

	c := Defaults()
	c.DataDir = "/d"
	if err := c.Resolve(host, ok); err != nil {
		t.Fatal(err)
	}
	if c.Socket != DefaultSocket || c.Users != "/d/users.yaml" || c.NodeName != "node-7" {
		t.Fatalf("resolved %+v", c)
	}
	c = Defaults()
	c.DataDir = "/d"
	if err := c.Resolve(host, no); err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/d/kedge.sock" {
		t.Fatalf("socket fallback %q, want /d/kedge.sock", c.Socket)
	}
	for name, mod := range map[string]func(*Config){
		"bad level":         func(c *Config) { c.LogLevel = "loud" },
		"insecure with tls": func(c *Config) { c.Insecure = true; c.TLSCA = "/ca.pem" },
		"zero max msg":      func(c *Config) { c.MaxMsgBytes = 0 },
	} {
		c := Defaults()
		mod(&c)
		if err := c.Resolve(host, ok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeployConfigExample(t *testing.T) {
	c, err := Parse([]string{"--config", "../../deploy/daemon/kedge-daemon.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Defaults(), c); d != "" {
		t.Fatalf("example differs from the defaults (-want +got):\n%s", d)
	}
}
