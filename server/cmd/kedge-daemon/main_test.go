package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/yang"
)

// buildDaemon compiles this command into a temp dir.
func buildDaemon(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH: cannot build the daemon binary")
	}
	bin := filepath.Join(t.TempDir(), "kedge-daemon")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemonProc is a running daemon binary whose log lines are collected.
type daemonProc struct {
	cmd   *exec.Cmd
	lines chan string
	log   strings.Builder
	done  chan error
}

func startProc(t *testing.T, bin string, args ...string) *daemonProc {
	t.Helper()
	return startCmd(t, exec.Command(bin, args...))
}

// startCmd is startProc for a prepared command.
func startCmd(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range p.lines {
		}
	})
	return p
}

// waitLine returns the first submatch of re in the log, or fails at the
// deadline.
func (p *daemonProc) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("daemon exited before logging %v; log:\n%s", re, p.log.String())
			}
			p.log.WriteString(l + "\n")
			if m := re.FindStringSubmatch(l); m != nil {
				return m[len(m)-1]
			}
		case <-deadline:
			t.Fatalf("no log line matching %v; log:\n%s", re, p.log.String())
		}
	}
}

// wait drains the log and returns the exit status.
func (p *daemonProc) wait(t *testing.T) error {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if ok {
				p.log.WriteString(l + "\n")
				continue
			}
			return <-p.done
		case <-deadline:
			t.Fatalf("daemon did not exit; log:\n%s", p.log.String())
		}
	}
}

func TestBinary(t *testing.T) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "kedge.sock")
	p := startProc(t, bin, "--data-dir", dir, "--listen", "127.0.0.1:0", "--socket", sock, "--netns", "kedge-test-ns", "--dataplane", "off")
	addr := p.waitLine(t, regexp.MustCompile(`msg="gNMI listening" tcp=(\S+)`))
	p.waitLine(t, regexp.MustCompile(`msg="gNMI listening" unix=`))
	for _, want := range []string{"created users file", "dataplane backend", "gnmic -a"} {
		if !strings.Contains(p.log.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, p.log.String())
		}
	}

	pwb, err := os.ReadFile(filepath.Join(dir, "master.password"))
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(pwb))
	certPEM, err := os.ReadFile(filepath.Join(dir, "tls", "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := gpb.NewGNMIClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mctx := metadata.AppendToOutgoingContext(ctx, "username", "master", "password", pw)
	if _, err := cl.Capabilities(mctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	level, _ := tree.ParsePath("/kedge/posture/config/level")
	if _, err := cl.Set(mctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: level},
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 3}}}}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := cl.Get(mctx, &gpb.GetRequest{Path: []*gpb.Path{{Elem: level}}}); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if os.Geteuid() == 0 {
		uconn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer uconn.Close()
		if _, err := gpb.NewGNMIClient(uconn).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
			t.Fatalf("Capabilities over the unix socket as root: %v", err)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, p.log.String())
	}

	// The store reopens cleanly (lock released) with the Set in it.
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store"), schema, store.Options{})
	if err != nil {
		t.Fatalf("reopen store: %v", err)
	}
	defer st.Close()
	if st.Seq() == 0 {
		t.Fatal("reopened store has no commits")
	}
}

func TestBinaryRefusesInsecureNonLoopback(t *testing.T) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	p := startProc(t, bin, "--data-dir", dir, "--listen", "0.0.0.0:0", "--insecure", "--socket", "off")
	err := p.wait(t)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want non-zero; log:\n%s", err, p.log.String())
	}
	if !strings.Contains(p.log.String(), "only allowed on a loopback address") {
		t.Fatalf("no clear refusal in the log:\n%s", p.log.String())
	}
}

func TestUserAdd(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	for _, u := range []struct{ name, tier, pw string }{{"alice", "operator", "alice-secret-1"}, {"bob", "observer", "bob-secret-22"}} {
		if code := run([]string{"user", "add", u.name, "--tier", u.tier, "--users", users}, strings.NewReader(u.pw+"\n"), io.Discard, io.Discard); code != 0 {
			t.Fatalf("user add %s: exit %d", u.name, code)
		}
	}
	if code := run([]string{"user", "add", "carol", "--tier", "admin", "--users", users}, strings.NewReader("carol-secret\n"), io.Discard, io.Discard); code == 0 {
		t.Fatal("user add with a bad tier succeeded")
	}
	uf, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(users)
	if strings.Contains(string(b), "alice-secret-1") {
		t.Fatal("users file holds a plaintext password")
	}
	a, err := uf.Lookup("alice")
	if err != nil || a.Tier != auth.Operator {
		t.Fatalf("alice: %+v %v", a, err)
	}
	if ok, _ := auth.VerifyPassword(a.Hash, "alice-secret-1"); !ok {
		t.Fatal("alice's password does not verify")
	}
	if _, err := uf.Lookup("carol"); err == nil {
		t.Fatal("carol was added")
	}
}
