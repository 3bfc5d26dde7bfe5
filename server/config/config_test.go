package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kedge.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\ndata-dir: /from/file\nnetns: blue\nmax-msg-bytes: 1024\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Parse([]string{"--config", file, "--listen", "127.0.0.1:2222", "--insecure"})
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
	if _, err := Parse([]string{"--config", file, "--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	os.WriteFile(file, []byte("lisen: x\n"), 0o600)
	if _, err := Parse([]string{"--config", file}); err == nil {
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
		"bad level":                     func(c *Config) { c.LogLevel = "loud" },
		"insecure with tls":             func(c *Config) { c.Insecure = true; c.TLSCA = "/ca.pem" },
		"zero max msg":                  func(c *Config) { c.MaxMsgBytes = 0 },
		"two kube configs":              func(c *Config) { c.Kubeconfig = "/kc"; c.KubeInCluster = true },
		"memory limit":                  func(c *Config) { c.MemoryLimit = "1 GiB" },
		"tiny memory limit":             func(c *Config) { c.MemoryLimit = "1Mi" },
		"time slice below the kernel's": func(c *Config) { c.TimeSlice = 50 * time.Microsecond },
		"time slice above the kernel's": func(c *Config) { c.TimeSlice = time.Second },
		"negative time slice":           func(c *Config) { c.TimeSlice = -time.Millisecond },
	} {
		c := Defaults()
		mod(&c)
		if err := c.Resolve(host, ok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeployConfigExample(t *testing.T) {
	c, err := Parse([]string{"--config", "../../deploy/daemon/kedge-daemon.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Defaults(), c); d != "" {
		t.Fatalf("example differs from the defaults (-want +got):\n%s", d)
	}
}

// A config file's mistakes are reported with the file, the line and the
// key (never a Go type name), and change nothing.
func TestConfigFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kedge.yaml")
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "listen: 127.0.0.1:1\nlisten-adress: x\n",
			[]string{file, "line 2", `unknown key "listen-adress"`, "known keys: bpf-pin-dir, data-dir,"}},
		{"wrong kind", "max-msg-bytes: lots\n", []string{file, "line 1", `key "max-msg-bytes" wants a whole number`}},
		{"not a duration", "gc-percent: 150\ntime-slice: lots\n", []string{file, "line 2", `key "time-slice" wants a duration such as 100us`}},
		{"not a drain duration", "shellstream-drain: [1]\n", []string{file, "line 1", `key "shellstream-drain" wants a duration`}},
		{"bool", "insecure: maybe\n", []string{file, `key "insecure" wants true or false`}},
		{"twice", "listen: a\nlisten: b\n", []string{file, "line 2", `key "listen" is set twice`}},
		{"not a mapping", "- listen\n", []string{file, "line 1", "want a mapping"}},
		{"bad yaml", "listen: [\n", []string{file}},
	} {
		if err := os.WriteFile(file, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Parse([]string{"--config", file})
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "config.Config") {
			t.Errorf("%s: error names a Go type: %v", tc.name, err)
		}
	}
	// An empty file sets nothing.
	os.WriteFile(file, nil, 0o600)
	if c, err := Parse([]string{"--config", file}); err != nil || c != Defaults() {
		t.Fatalf("empty config file: %+v, %v", c, err)
	}
}

// --help and --version are requests, not errors: Parse reports them with
// sentinels, so the caller can print to stdout and exit 0.
func TestHelpAndVersionFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--listen", "x", "-help"}} {
		if _, err := Parse(args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Parse(%q): %v, want flag.ErrHelp", args, err)
		}
	}
	for _, args := range [][]string{{"--version"}, {"--log-level", "debug", "-version"}} {
		if _, err := Parse(args); !errors.Is(err, ErrVersion) {
			t.Errorf("Parse(%q): %v, want ErrVersion", args, err)
		}
	}
}

// Every flag is documented in deploy/daemon/README.md's table, and the
// table names no flag that does not exist.
func TestFlagsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../deploy/daemon/README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	row := regexp.MustCompile("^\\| (`--[a-z-]+`(?:, `--[a-z-]+`)*) \\|")
	flagName := regexp.MustCompile("`--([a-z-]+)`")
	for _, l := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(l); m != nil {
			for _, f := range flagName.FindAllStringSubmatch(m[1], -1) {
				documented[f[1]] = true
			}
		}
	}
	c := Defaults()
	var missing []string
	FlagSet(&c).VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] {
			missing = append(missing, f.Name)
		}
		delete(documented, f.Name)
	})
	if len(missing) > 0 {
		t.Errorf("flags missing from deploy/daemon/README.md's table: %v", missing)
	}
	if len(documented) > 0 {
		t.Errorf("deploy/daemon/README.md documents flags that do not exist: %v", documented)
	}
	// And every config key is a flag of the same name.
	fs := FlagSet(&c)
	for _, k := range Keys() {
		if fs.Lookup(k) == nil {
			t.Errorf("config key %q has no flag", k)
		}
	}
}

// --time-slice takes a duration from a flag or the file; 0 keeps the
// kernel's default.
func TestTimeSliceSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kedge.yaml")
	if err := os.WriteFile(file, []byte("time-slice: 250us\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 100 * time.Microsecond},
		{[]string{"--time-slice", "0"}, 0},
		{[]string{"--time-slice", "2ms"}, 2 * time.Millisecond},
		{[]string{"--config", file}, 250 * time.Microsecond},
		{[]string{"--config", file, "--time-slice", "1ms"}, time.Millisecond},
	} {
		c, err := Parse(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.TimeSlice != tc.want {
			t.Errorf("%v: time slice %s, want %s", tc.args, c.TimeSlice, tc.want)
		}
	}
}
