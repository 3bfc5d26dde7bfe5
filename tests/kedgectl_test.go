package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/shellstream"
	"github.com/guildhouse-co/kedge/server/shellstream/spiffetest"
)

var update = flag.Bool("update", false, "rewrite the golden files under tests/testdata")

// ctlRun is one kedgectl invocation's result.
type ctlRun struct {
	stdout, stderr string
	code           int
}

// kedgectl runs the binary with args, stdin and extra environment.
func kedgectl(t testing.TB, bin string, env []string, stdin string, args ...string) ctlRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kedgectl %v: %v", args, err)
	}
	return ctlRun{out.String(), errb.String(), code}
}

// ctlMust runs kedgectl and fails the test unless it exits 0.
func ctlMust(t testing.TB, bin string, env []string, args ...string) ctlRun {
	t.Helper()
	r := kedgectl(t, bin, env, "", args...)
	if r.code != 0 {
		t.Fatalf("kedgectl %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// masker replaces what changes from run to run (times, durations, ages,
// byte counts, keys, ids, the lab's random names and subnet) with
// placeholders, then evens out the columns that tabwriter padded around
// them.
type masker struct{ exact [][2]string }

var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`), "<clock>"},
	{regexp.MustCompile(`\b\d+(\.\d+)? (ns|µs|ms|s)\b`), "<dur>"},
	{regexp.MustCompile(`\b\d+[smhd] ago\b`), "<ago>"},
	{regexp.MustCompile(`\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b`), "<bytes>"},
	{regexp.MustCompile(`kedgectl-[0-9a-f]{12}`), "kedgectl-<id>"},
	{regexp.MustCompile(`[A-Za-z0-9+/]{43}=`), "<key>"},
	{regexp.MustCompile(`\(\d+ms(, \d+/s)?\)`), "(<elapsed>)"},
	{regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)(, \d+/s)?\)`), "(<elapsed>)"},
	{regexp.MustCompile(`version [^\s,]+`), "version <v>"},
	{regexp.MustCompile(`kernel \d[^\s)]*`), "kernel <release>"},
	// The notary samples transits by session id: how many it holds varies.
	{regexp.MustCompile(`\b\d+ records?\b`), "<n> records"},
}

var padding = regexp.MustCompile(`  +`)

func (m masker) mask(s string) string {
	for _, e := range m.exact {
		s = strings.ReplaceAll(s, e[0], e[1])
	}
	for _, x := range masks {
		s = x.re.ReplaceAllString(s, x.with)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(padding.ReplaceAllString(l, "  "), " ")
	}
	return strings.Join(lines, "\n")
}

// golden compares got (masked) with testdata/kedgectl/name.golden, or
// rewrites it under -update.
func golden(t *testing.T, m masker, name, got string) {
	t.Helper()
	got = m.mask(got)
	p := filepath.Join("testdata", "kedgectl", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("kedgectl %s differs from %s (-want +got):\n%s", name, p, diff)
	}
}

// TestKedgectl runs the kedgectl binary against a running daemon, verb by
// verb, and compares each output with its golden file (times, durations,
// ages, byte counts, keys and the lab's random names masked; -update
// rewrites them). The daemon, n0, has a real dataplane in a throwaway
// namespace (routes through netlink, a WireGuard mesh with a second
// daemon n1, which it marks critical) and Shellstream with a test SPIRE
// authority, so every verb shows live data: routes installed and
// withheld with reasons, both peers up with handshakes and traffic, an
// open session.
func TestKedgectl(t *testing.T) {
	l := newMeshLab(t, 2)
	bin := gcliBuild(t, t.TempDir(), "github.com/guildhouse-co/kedge/server/cmd/kedgectl")
	n0 := l.nodes[0]

	// n0 again, with Shellstream: a test authority's Workload API, an echo
	// endpoint per session type, the operator identity mapped to a tier.
	auth, err := spiffetest.NewAuthority("kedge.test")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := spiffetest.StartWorkloadAPI(auth, auth.ID("/kedge/n0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wl.Close)
	n0.stop()
	cfg := daemonCfg(t, n0.dir, n0.ns)
	cfg.NodeName = n0.name
	cfg.SPIFFESocket = wl.Addr()
	cfg.ShellstreamEndpoints = ssEcho(t, n0.dir)
	cfg.Policy = ssPolicy(t, n0.dir, map[string]string{auth.ID("/ops/operator").String(): "operator"})
	cfg.ShellstreamID = ""
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var stop func()
	n0.c, stop, _ = startKedgeDaemon(t, cfg)
	n0.stop = stop
	l.configure(t, map[[2]int]bool{{0, 1}: true}, meshAll)
	for _, pair := range [][2]*meshNode{{n0, l.nodes[1]}, {l.nodes[1], n0}} {
		meshWaitPeerStatus(t, pair[0], pair[1].name, "up", 30*time.Second)
	}
	addr := []string{"--addr", "unix://" + cfg.Socket}
	env := []string{"KEDGE_ADDR=", "KEDGE_USER=", "KEDGE_PASSWORD="}
	run := func(args ...string) ctlRun { t.Helper(); return ctlMust(t, bin, env, append(addr, args...)...) }

	m := masker{exact: [][2]string{{l.id, "LAB"}, {fmt.Sprintf("10.%d.", l.s), "10.S."}, {n0.dir, "DATA"}}}

	// Routes of every class, through the import verb; the on-link next hop
	// is n1's underlay address.
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	var rb strings.Builder
	rb.WriteString("routes:\n")
	for i, class := range []string{"management", "incident", "monitoring", "overlay", "underlay", "pod"} {
		fmt.Fprintf(&rb, "- prefix: 10.99.%d.0/24\n  next-hop: %s\n  device: eth0\n  class: %s\n  owner: kedgectl-test\n",
			i, l.nodes[1].under, class)
	}
	if err := os.WriteFile(routes, []byte(rb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	imp := run("routes", "import", "--batch", "4", routes)
	golden(t, m, "routes-import", imp.stdout+"--- stderr\n"+imp.stderr)
	meshWait(t, "six routes installed", 30*time.Second, func() bool {
		var v struct {
			ByClass []summary.ClassCount `json:"by-class"`
		}
		json.Unmarshal([]byte(run("routes", "-o", "json").stdout), &v)
		n := 0
		for _, c := range v.ByClass {
			n += c.Status["installed"]
		}
		return n == 6
	})
	// A bad file changes nothing and says where.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("- prefix: 10.98.0.0/16\n- prefix: 10.98.1.0/24\n  metrik: 3\n"), 0o600)
	r := kedgectl(t, bin, env, "", append(addr, "routes", "import", bad)...)
	golden(t, masker{exact: [][2]string{{bad, "BAD"}}}, "routes-import-bad", fmt.Sprintf("exit %d\n%s", r.code, r.stderr))

	// A session over the unix socket (a local one) that stays open.
	cc := ssUnix(t, cfg.Socket)
	id := auth.ID("/ops/operator")
	tok, err := auth.JWTSVID(spiffetest.Claims{Subject: id, Audience: []string{cfg.ShellstreamID}})
	if err != nil {
		t.Fatal(err)
	}
	svid, err := auth.X509SVID(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssOpen(t, cc, shellstream.ClientConfig{SAT: tok, Chain: svid.Certificates, Key: svid.PrivateKey,
		Audience: cfg.ShellstreamID, Type: session.Management, Node: "console", Level: 5})
	if err != nil {
		t.Fatal(err)
	}
	ssEchoOnce(t, cs, "hello from kedgectl's test\n")
	meshWait(t, "the session in /kedge/sessions", 20*time.Second, func() bool {
		for _, s := range ssSessions(t, n0.c) {
			if s["status"] == "active" && s["bytes-in"] != "" && s["bytes-in"] != "0" {
				return true
			}
		}
		return false
	})
	for id := range ssSessions(t, n0.c) {
		m.exact = append(m.exact, [2]string{id, "<session>"})
	}

	t.Run("status", func(t *testing.T) { golden(t, m, "status", run("status").stdout) })
	t.Run("mesh", func(t *testing.T) { golden(t, m, "mesh", run("mesh").stdout) })
	t.Run("sessions", func(t *testing.T) { golden(t, m, "sessions", run("sessions").stdout) })
	t.Run("routes", func(t *testing.T) { golden(t, m, "routes", run("routes").stdout) })
	t.Run("posture-get", func(t *testing.T) { golden(t, m, "posture-get", run("posture", "get").stdout) })

	t.Run("json-yaml", func(t *testing.T) {
		// Both formats carry the same summary as the table.
		var js, ys summary.Node
		if err := json.Unmarshal([]byte(run("status", "-o", "json").stdout), &js); err != nil {
			t.Fatal(err)
		}
		var y any
		if err := yaml.Unmarshal([]byte(run("status", "-o", "yaml").stdout), &y); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(y)
		if err := json.Unmarshal(b, &ys); err != nil {
			t.Fatal(err)
		}
		if js.System.Node != "n0" || js.Posture.Effective != 5 || len(js.Mesh.Peers) != 1 || js.Routes.Total != 6 || len(js.Sessions) != 1 {
			t.Errorf("status -o json: %+v", js)
		}
		if ys.System.Node != js.System.Node || ys.Routes.Total != js.Routes.Total || len(ys.Mesh.Peers) != len(js.Mesh.Peers) {
			t.Errorf("status -o yaml %+v differs from -o json %+v", ys, js)
		}
	})

	t.Run("posture-watch-and-set", func(t *testing.T) {
		// watch prints the current level, then one line per transition.
		cmd := exec.Command(bin, append(addr, "posture", "watch", "--count", "3")...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var werr bytes.Buffer
		cmd.Stderr = &werr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		lines := make(chan string, 8)
		go func() {
			s := bufio.NewScanner(out)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
		}()
		var got []string
		next := func() {
			t.Helper()
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended early: %v\n%s", got, werr.String())
				}
				got = append(got, l)
			case <-time.After(30 * time.Second):
				t.Fatalf("no watch line within 30 s; so far %v", got)
			}
		}
		next() // subscribed: the level now
		set := run("posture", "set", "3")
		golden(t, m, "posture-set", set.stdout+"--- stderr\n"+set.stderr)
		next()
		run("posture", "set", "5")
		next()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("watch: %v\n%s", err, werr.String())
		}
		golden(t, m, "posture-watch", strings.Join(got, "\n")+"\n")
	})

	t.Run("commit-confirmed", func(t *testing.T) {
		// Confirmed from stdin: the level stays, the countdown was shown.
		r := kedgectl(t, bin, env, "confirm\n", append(addr, "posture", "set", "4", "--confirm-within", "2m")...)
		if r.code != 0 {
			t.Fatalf("set with confirm: exit %d\n%s", r.code, r.stderr)
		}
		golden(t, m, "posture-set-confirm", r.stdout+"--- stderr\n"+r.stderr)
		// Cancelled: rolled back to 4.
		r = kedgectl(t, bin, env, "cancel\n", append(addr, "posture", "set", "2", "--confirm-within", "2m")...)
		if r.code != 0 {
			t.Fatalf("set with cancel: exit %d\n%s", r.code, r.stderr)
		}
		golden(t, m, "posture-set-cancel", r.stdout+"--- stderr\n"+r.stderr)
		// Left pending at end of input, then a plain Set is refused, then
		// confirm by id.
		r = kedgectl(t, bin, env, "", append(addr, "posture", "set", "3", "--confirm-within", "5m")...)
		if r.code != 0 || !strings.Contains(r.stderr, "stays pending") {
			t.Fatalf("set left pending: exit %d\n%s", r.code, r.stderr)
		}
		cid := regexp.MustCompile(`kedgectl-[0-9a-f]{12}`).FindString(r.stderr)
		busy := kedgectl(t, bin, env, "", append(addr, "posture", "set", "5")...)
		golden(t, m, "posture-set-busy", fmt.Sprintf("exit %d\n%s", busy.code, busy.stderr))
		conf := run("posture", "confirm", cid)
		golden(t, m, "posture-confirm", conf.stdout+"--- stderr\n"+conf.stderr)
		// Expired: the node rolls back by itself and kedgectl waits for it.
		r = kedgectl(t, bin, env, "", append(addr, "posture", "set", "2", "--confirm-within", "2s", "--no-wait")...)
		if r.code != 0 {
			t.Fatalf("no-wait: exit %d\n%s", r.code, r.stderr)
		}
		meshWait(t, "the rollback to 3", 30*time.Second, func() bool {
			var p summary.Posture
			json.Unmarshal([]byte(run("posture", "get", "-o", "json").stdout), &p)
			return p.Level == 3 && p.Effective == 3
		})
		run("posture", "set", "1")
	})

	// At level 1 only monitoring and incident routes stay; the other four
	// are withheld, each with the reason; the mesh is torn down.
	t.Run("routes-level-1", func(t *testing.T) {
		meshWait(t, "routes withheld at level 1", 30*time.Second, func() bool {
			var v struct {
				Withheld []json.RawMessage `json:"withheld"`
			}
			json.Unmarshal([]byte(run("routes", "-o", "json").stdout), &v)
			return len(v.Withheld) == 4
		})
		golden(t, m, "routes-level-1", run("routes").stdout)
		golden(t, m, "status-level-1", run("status").stdout)
	})

	t.Run("usage-errors", func(t *testing.T) {
		var b strings.Builder
		for _, args := range [][]string{{"posture", "set", "7"}, {"posture", "bogus"}, {"status", "-o", "xml"}, {"routes", "extra"}} {
			r := kedgectl(t, bin, env, "", append(addr, args...)...)
			fmt.Fprintf(&b, "$ kedgectl %s\nexit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		golden(t, m, "usage-errors", b.String())
	})
}
