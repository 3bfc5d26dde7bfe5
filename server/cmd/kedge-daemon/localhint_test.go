package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged uid/gid the test runs the daemon and its
// client as.
const nobody = 65534

// Started by a user the policy maps to no tier, the daemon's "connect
// locally" line gives a command that works for that user: a password
// login over the socket (a bare socket connection, what the line used to
// print, is refused), and says how to map the uid instead.
func TestBinaryLocalHintAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the daemon and a client as another user")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	// A tree nobody can traverse, with a data dir nobody owns.
	base, err := os.MkdirTemp("", "kedge-auth-hint-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin, cli := filepath.Join(base, "kedge-daemon"), filepath.Join(base, "gnmi_cli")
	for pkg, out := range map[string]string{".": bin, "github.com/openconfig/gnmi/cmd/gnmi_cli": cli} {
		if b, err := exec.Command(gobin, "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}

	sock := filepath.Join(dir, "kedge.sock")
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", "", "--socket", sock, "--dataplane", "off")
	cmd.SysProcAttr = asNobody
	p := startCmd(t, cmd)
	line := p.waitLine(t, regexp.MustCompile(`(msg="connect locally.*)`))
	pwFile := filepath.Join(dir, "master.password")
	for _, want := range []string{"with a password", "unix://" + sock, `-u master -p \"$(cat ` + pwFile + `)\"`,
		"uids: {65534: operator}"} {
		if !strings.Contains(line, want) {
			t.Errorf("connect line lacks %q:\n%s", want, line)
		}
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}

	client := func(env ...string) (string, error) {
		c := exec.Command(cli, "-a", "unix://"+sock, "-insecure", "-timeout", "20s", "-capabilities")
		c.SysProcAttr = asNobody
		c.Env = append(os.Environ(), env...)
		if len(env) > 0 {
			c.Args = append(c.Args, "-with_user_pass")
		}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	// As printed: the master password over the socket.
	if out, err := client("GNMI_USER=master", "GNMI_PASS="+strings.TrimSpace(string(pw))); err != nil || !strings.Contains(out, `name: "kedge"`) {
		t.Fatalf("the printed command, as uid %d: %v\n%s", nobody, err, out)
	}
	// The bare socket connection: refused, this uid has no tier.
	if out, err := client(); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("bare socket connection as uid %d: %v\n%s", nobody, err, out)
	}
}
