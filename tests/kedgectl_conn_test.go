package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/config"
)

// TestKedgectlConnections: kedgectl over TCP with TLS and a password from
// a file or the environment, refusing to ask on a terminal it does not
// have, a wrong password and an unverified certificate failing clearly;
// over mTLS with a client certificate; and its help and completion.
func TestKedgectlConnections(t *testing.T) {
	bin := gcliBuild(t, t.TempDir(), "github.com/guildhouse-co/kedge/server/cmd/kedgectl")
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket = dir, "127.0.0.1:0", "off"
	cfg.NodeName, cfg.Dataplane, cfg.MetricsListen = "conn-node", "off", "off"
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	_, _, d := startKedgeDaemon(t, cfg)
	pwFile := filepath.Join(dir, "master.password")
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"KEDGE_ADDR=", "KEDGE_USER=", "KEDGE_PASSWORD="}
	tcp := []string{"--addr", d.TCPAddr().String(), "--tls-ca", filepath.Join(dir, "tls", "server.crt"), "--tls-server-name", "conn-node"}
	level := func(r ctlRun) uint8 {
		t.Helper()
		var p summary.Posture
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("posture get -o json: %v\n%s", err, r.stdout)
		}
		return p.Effective
	}

	t.Run("password-file", func(t *testing.T) {
		r := ctlMust(t, bin, env, append(tcp, "-u", "master", "--password-file", pwFile, "posture", "get", "-o", "json")...)
		if level(r) != 5 {
			t.Errorf("effective level %d", level(r))
		}
	})
	t.Run("password-env", func(t *testing.T) {
		e := []string{"KEDGE_ADDR=", "KEDGE_USER=master", "KEDGE_PASSWORD=" + strings.TrimSpace(string(pw))}
		ctlMust(t, bin, e, append(tcp, "posture", "set", "4")...)
		if l := level(ctlMust(t, bin, e, append(tcp, "posture", "get", "-o", "json")...)); l != 4 {
			t.Errorf("effective level %d after set 4", l)
		}
	})
	t.Run("no-terminal-to-ask", func(t *testing.T) {
		r := kedgectl(t, bin, env, "", append(tcp, "-u", "master", "status")...)
		if r.code != 2 || !strings.Contains(r.stderr, "--password-file") || !strings.Contains(r.stderr, "KEDGE_PASSWORD") {
			t.Errorf("no password: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("wrong-password", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "pw")
		writeSecret(t, bad, "not-the-password\n")
		r := kedgectl(t, bin, env, "", append(tcp, "-u", "master", "--password-file", bad, "status")...)
		if r.code != 1 || !strings.Contains(r.stderr, "(Unauthenticated)") {
			t.Errorf("wrong password: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("unverified-certificate", func(t *testing.T) {
		r := kedgectl(t, bin, env, "", "--addr", d.TCPAddr().String(), "-u", "master", "--password-file", pwFile, "status")
		if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
			t.Errorf("no --tls-ca: exit %d\n%s", r.code, r.stderr)
		}
		ctlMust(t, bin, env, "--addr", d.TCPAddr().String(), "--skip-verify", "-u", "master", "--password-file", pwFile, "status")
	})

	t.Run("mtls", func(t *testing.T) {
		mdir := t.TempDir()
		ca, cert, key := gcliPKI(t, mdir, "kedgectl-client")
		policy := filepath.Join(mdir, "policy.yaml")
		writeSecret(t, policy, "tiers:\n  master: {write: [\"/\"]}\ncertificates:\n  kedgectl-client: master\n")
		mc := config.Defaults()
		mc.DataDir, mc.Listen, mc.Socket = mdir, "127.0.0.1:0", "off"
		mc.NodeName, mc.Dataplane, mc.MetricsListen, mc.TLSCA, mc.Policy = "mtls-node", "off", "off", ca, policy
		if err := mc.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
			t.Fatal(err)
		}
		_, _, md := startKedgeDaemon(t, mc)
		m := []string{"--addr", md.TCPAddr().String(), "--tls-ca", filepath.Join(mdir, "tls", "server.crt"), "--tls-server-name", "mtls-node"}
		ctlMust(t, bin, env, append(m, "--tls-cert", cert, "--tls-key", key, "posture", "set", "3")...)
		if l := level(ctlMust(t, bin, env, append(m, "--tls-cert", cert, "--tls-key", key, "posture", "get", "-o", "json")...)); l != 3 {
			t.Errorf("effective level %d after set 3 over mTLS", l)
		}
		if r := kedgectl(t, bin, env, "", append(m, "status")...); r.code != 1 {
			t.Errorf("mTLS node without a client certificate: exit %d\n%s", r.code, r.stderr)
		}
		if r := kedgectl(t, bin, env, "", append(m, "--tls-cert", cert, "status")...); r.code != 2 {
			t.Errorf("--tls-cert without --tls-key: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("help-and-completion", func(t *testing.T) {
		// Every verb has --help with an example.
		for _, verb := range [][]string{{}, {"status"}, {"posture"}, {"posture", "get"}, {"posture", "set"}, {"posture", "confirm"},
			{"posture", "cancel"}, {"posture", "watch"}, {"mesh"}, {"routes"}, {"routes", "import"}, {"sessions"}, {"underlay"}} {
			r := ctlMust(t, bin, env, append(verb, "--help")...)
			if !strings.Contains(r.stdout, "Examples:\n  kedgectl") {
				t.Errorf("kedgectl %v --help has no example:\n%s", verb, r.stdout)
			}
		}
		for _, shell := range []string{"bash", "zsh", "fish"} {
			r := ctlMust(t, bin, env, "completion", shell)
			if !strings.Contains(r.stdout, "kedgectl") || len(r.stdout) < 500 {
				t.Errorf("completion %s: %d bytes", shell, len(r.stdout))
			}
		}
		// The completion script's helper completes levels and formats.
		r := ctlMust(t, bin, env, "__complete", "posture", "set", "")
		for _, l := range []string{"1", "2", "3", "4", "5"} {
			if !strings.Contains(r.stdout, l+"\n") {
				t.Errorf("completions of posture set lack %s:\n%s", l, r.stdout)
			}
		}
		r = ctlMust(t, bin, env, "__complete", "status", "-o", "")
		if !strings.Contains(r.stdout, "json\n") || !strings.Contains(r.stdout, "yaml\n") {
			t.Errorf("completions of -o:\n%s", r.stdout)
		}
	})
}
