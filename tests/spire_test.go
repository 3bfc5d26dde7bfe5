package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/shellstream"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// spireVersion is the SPIRE release the Makefile's spire target builds.
const spireVersion = "v1.13.3"

// spireBins finds spire-server and spire-agent: $KEDGE_SPIRE_DIR, else
// the Makefile's cache directory. Missing binaries skip the test with the
// command that builds them, and fail it under KEDGE_REQUIRE_KERNEL=1 (CI).
func spireBins(t testing.TB) (server, agent string) {
	t.Helper()
	dir := os.Getenv("KEDGE_SPIRE_DIR")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "kedge", "tools", "spire-"+spireVersion)
	}
	server, agent = filepath.Join(dir, "spire-server"), filepath.Join(dir, "spire-agent")
	for _, b := range []string{server, agent} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("no SPIRE %s binaries in %s (build them with `make spire`, a few minutes; or set KEDGE_SPIRE_DIR)", spireVersion, dir)
			needs.Unavailable(t, "%s", msg)
		}
	}
	return server, agent
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// spireRun runs a SPIRE command and returns its output.
func spireRun(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

// spireStart starts a long-running SPIRE process, stopped at cleanup; its
// log is shown when the test fails.
func spireStart(t testing.TB, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), log.String())
		}
	})
}

// spireHealthy waits for a SPIRE component's healthcheck.
func spireHealthy(t testing.TB, bin, sock string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := exec.Command(bin, "healthcheck", "-socketPath", sock).CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after 90 s: %v\n%s", filepath.Base(bin), err, out)
		}
		time.Sleep(200 * time.Millisecond) // polling the healthcheck
	}
}

// spireLab is a running SPIRE server and agent with an entry for this
// process's uid.
type spireLab struct {
	dir, agentSock, id string
	wl                 *workloadapi.Client
	x                  *x509svid.SVID
}

// startSPIRE runs a real SPIRE server (sqlite3 datastore, disk key manager,
// join_token attestation, on 127.0.0.1) and agent (join_token, unix
// workload attestor) and registers this process's uid as
// spiffe://kedge.test/ops/master; it returns once the agent issues the
// X.509-SVID.
func startSPIRE(t testing.TB) *spireLab {
	t.Helper()
	serverBin, agentBin := spireBins(t)
	dir, err := os.MkdirTemp("", fmt.Sprintf("kedge-spire-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const td = "kedge.test"
	port := freePort(t)
	serverSock := filepath.Join(dir, "server.sock")
	agentSock := filepath.Join(dir, "agent.sock")
	serverConf := fmt.Sprintf(`server {
    bind_address = "127.0.0.1"
    bind_port = "%d"
    socket_path = %q
    trust_domain = %q
    data_dir = %q
    log_level = "INFO"
    ca_ttl = "24h"
    default_x509_svid_ttl = "1h"
    default_jwt_svid_ttl = "5m"
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = %q
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = %q
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
`, port, serverSock, td, filepath.Join(dir, "server"), filepath.Join(dir, "server", "datastore.sqlite3"), filepath.Join(dir, "server", "keys.json"))
	os.MkdirAll(filepath.Join(dir, "server"), 0o700)
	os.WriteFile(filepath.Join(dir, "server.conf"), []byte(serverConf), 0o600)
	spireStart(t, serverBin, "run", "-config", filepath.Join(dir, "server.conf"))
	spireHealthy(t, serverBin, serverSock)

	bundle := spireRun(t, serverBin, "bundle", "show", "-socketPath", serverSock)
	os.WriteFile(filepath.Join(dir, "bundle.pem"), []byte(bundle), 0o600)
	tokOut := spireRun(t, serverBin, "token", "generate", "-socketPath", serverSock, "-spiffeID", "spiffe://"+td+"/host")
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(tokOut)
	if m == nil {
		t.Fatalf("no token in %q", tokOut)
	}
	operatorID := "spiffe://" + td + "/ops/master"
	spireRun(t, serverBin, "entry", "create", "-socketPath", serverSock, "-parentID", "spiffe://"+td+"/host",
		"-spiffeID", operatorID, "-selector", "unix:uid:"+strconv.Itoa(os.Getuid()))

	agentConf := fmt.Sprintf(`agent {
    data_dir = %q
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "%d"
    socket_path = %q
    trust_bundle_path = %q
    trust_domain = %q
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
`, filepath.Join(dir, "agent"), port, agentSock, filepath.Join(dir, "bundle.pem"), td)
	os.MkdirAll(filepath.Join(dir, "agent"), 0o700)
	os.WriteFile(filepath.Join(dir, "agent.conf"), []byte(agentConf), 0o600)
	spireStart(t, agentBin, "run", "-config", filepath.Join(dir, "agent.conf"), "-joinToken", m[1])
	spireHealthy(t, agentBin, agentSock)

	// The agent serves our SVID once it has synced the entry.
	ctx := ssCtx(t)
	wl, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+agentSock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wl.Close() })
	var x *x509svid.SVID
	meshWait(t, "the agent to issue this uid's X.509-SVID", 90*time.Second, func() bool {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		x, err = wl.FetchX509SVID(fctx)
		return err == nil
	})
	if x.ID.String() != operatorID {
		t.Fatalf("agent issued %s, want %s", x.ID, operatorID)
	}

	return &spireLab{dir: dir, agentSock: agentSock, id: operatorID, wl: wl, x: x}
}

// TestShellstreamRealSPIRE runs a real SPIRE server (sqlite3 datastore,
// disk key manager, join_token attestation, on 127.0.0.1) and agent
// (join_token, unix workload attestor), registers this test's uid, and
// has a daemon verify a handshake whose SVIDs the real agent issued:
// cached at level 5, re-verified by the agent at level 3, and a token the
// agent issued for another audience refused.
func TestShellstreamRealSPIRE(t *testing.T) {
	sp := startSPIRE(t)
	dir, agentSock, operatorID, wl, x := sp.dir, sp.agentSock, sp.id, sp.wl, sp.x
	ctx := ssCtx(t)
	var err error
	ddir := filepath.Join(dir, "node")
	os.MkdirAll(ddir, 0o700)
	c := daemonCfg(t, ddir, "")
	c.NodeName = "spire-node"
	c.ShellstreamID = "kedge/spire-node"
	c.SPIFFESocket = "unix://" + agentSock
	c.ShellstreamEndpoints = ssEcho(t, dir)
	c.Policy = ssPolicy(t, dir, map[string]string{operatorID: "master"})
	gc, _ := startKedge(t, c)
	cc := ssUnix(t, c.Socket)

	open := func(level uint8, audience string) (*shellstream.ClientSession, error) {
		j, err := wl.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
		if err != nil {
			t.Fatalf("fetch jwt-svid: %v", err)
		}
		return shellstream.Open(ctx, cc, shellstream.ClientConfig{SAT: j.Marshal(), Chain: x.Certificates, Key: x.PrivateKey,
			Audience: "kedge/spire-node", Type: session.Management, Node: "laptop", Level: level})
	}
	var cs *shellstream.ClientSession
	meshWait(t, "a grant at level 5 (the agent's bundles reach the daemon)", 60*time.Second, func() bool {
		cs, err = open(5, "kedge/spire-node")
		return err == nil
	})
	if cs.Grant.GetVerification() != pb.VerificationMode_VERIFICATION_MODE_CACHED || cs.Grant.GetEffectiveLevel() != 5 {
		t.Errorf("level 5 grant %v", cs.Grant)
	}
	ssEchoOnce(t, cs, "real spire\n")
	cs.Close()

	setMeshLevel(t, gc, 3)
	meshWait(t, "a re-verified grant at level 3", 30*time.Second, func() bool {
		cs, err = open(5, "kedge/spire-node")
		return err == nil && cs.Grant.GetVerification() == pb.VerificationMode_VERIFICATION_MODE_REVERIFIED
	})
	if cs.Grant.GetEffectiveLevel() != 3 || len(cs.Grant.GetCapabilities()) != 3 {
		t.Errorf("level 3 grant %v", cs.Grant)
	}
	cs.Close()
	// A token the agent issued for another node: the agent itself refuses
	// it at level 3.
	_, err = open(5, "kedge/another-node")
	var d *shellstream.DeniedError
	if !errors.As(err, &d) || d.Reason != pb.DenyReason_DENY_REASON_INVALID_SAT {
		t.Fatalf("token for another audience: %v, want DENY invalid sat", err)
	}
	t.Logf("wrong audience at level 3: %s", d.Text)
}
