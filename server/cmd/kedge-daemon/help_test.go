package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/config"
)

// --help (and -h, help) prints the whole help on stdout and exits 0: every
// flag and every subcommand are in it.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}, {"--data-dir", "/x", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("%q: stderr %q, want nothing", args, stderr.String())
		}
		help := stdout.String()
		c := config.Defaults()
		config.FlagSet(&c).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(help, "--"+f.Name+" ") && !strings.Contains(help, "--"+f.Name+"\n") {
				t.Errorf("%q: help lacks --%s", args, f.Name)
			}
		})
		for _, sc := range subcommands {
			if !strings.Contains(help, "kedge-daemon "+sc.usage) {
				t.Errorf("%q: help lacks subcommand %q", args, sc.usage)
			}
		}
		for _, want := range []string{"user add NAME", "install-cni", "version"} {
			if !strings.Contains(help, want) {
				t.Errorf("%q: help lacks %q", args, want)
			}
		}
	}
	// Each subcommand's --help: its usage and flags on stdout, exit 0.
	for _, args := range [][]string{{"user", "--help"}, {"user", "add", "-h"}, {"install-cni", "--help"}, {"version", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, nil, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		sc, _ := lookup(args[0])
		if !strings.Contains(stdout.String(), "Usage: kedge-daemon "+sc.usage) {
			t.Errorf("%q: stdout %q", args, stdout.String())
		}
		if sc.flags != nil && !strings.Contains(stdout.String(), "Flags:") {
			t.Errorf("%q: no flags listed:\n%s", args, stdout.String())
		}
	}
	if !strings.Contains(run1(t, 0, "install-cni", "--help"), "--bin-dir") {
		t.Error("install-cni --help lacks --bin-dir")
	}
}

// run1 runs the command and returns its stdout, failing unless it exits
// with code.
func run1(t *testing.T, code int, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if got := run(args, strings.NewReader(""), &stdout, &stderr); got != code {
		t.Fatalf("%q: exit %d, want %d; stderr %q", args, got, code, stderr.String())
	}
	return stdout.String() + stderr.String()
}

// Usage mistakes exit 2 with a message that says what to do.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "kedge-daemon --help"},
		{[]string{"user"}, "usage: kedge-daemon user add NAME"},
		{[]string{"user", "del", "x"}, "usage: kedge-daemon user add NAME"},
		{[]string{"user", "add", "x", "--tier", "admin"}, "want one of master"},
		{[]string{"install-cni", "--nope"}, "usage: kedge-daemon install-cni"},
		{[]string{"version", "extra"}, "takes no arguments"},
	} {
		if out := run1(t, 2, tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("%q: output %q lacks %q", tc.args, out, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	want := "kedge-daemon " + buildinfo.Version() + "\n"
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}, {"--log-level", "debug", "--version"}} {
		if got := run1(t, 0, args...); got != want {
			t.Errorf("%q: %q, want %q", args, got, want)
		}
	}
}

// The Makefile's build stamps the version: a binary built with its
// -ldflags reports the stamp from --version, the version subcommand and
// /kedge/system/state/version.
func TestMakefileStampsVersion(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not in PATH")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	const stamp = "v0.0.0-stamp-test"
	cmd := exec.Command(makeBin, "-s", "-n", "-C", "../../..", "build", "VERSION="+stamp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`-ldflags '([^']*)'`).FindStringSubmatch(string(out))
	if m == nil || !strings.Contains(m[1], stamp) {
		t.Fatalf("make build passes no -ldflags with the version:\n%s", out)
	}
	bin := filepath.Join(t.TempDir(), "kedge-daemon")
	if out, err := exec.Command(gobin, "build", "-ldflags", m[1], "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", m[1], err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		got, err := exec.Command(bin, arg).Output()
		if err != nil || string(got) != "kedge-daemon "+stamp+"\n" {
			t.Fatalf("%s %s: %q, %v", bin, arg, got, err)
		}
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "kedge.sock")
	p := startProc(t, bin, "--data-dir", dir, "--listen", "", "--socket", sock, "--dataplane", "off")
	p.waitLine(t, regexp.MustCompile(`msg="gNMI listening" unix=`))
	if !strings.Contains(p.log.String(), "version="+stamp) {
		t.Errorf("start log does not name the version:\n%s", p.log.String())
	}
	if os.Geteuid() != 0 {
		return // reading the tree over the socket needs root's built-in tier
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The system state publisher starts after the listener: watch the
	// leaf until it appears.
	path, _ := tree.ParsePath("/kedge/system/state/version")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := gpb.NewGNMIClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: path}, Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := sc.Recv()
		if err != nil {
			t.Fatalf("watch /kedge/system/state/version: %v", err)
		}
		for _, u := range r.GetUpdate().GetUpdate() {
			if got := u.GetVal().GetStringVal(); got != stamp {
				t.Fatalf("/kedge/system/state/version = %q, want %q", got, stamp)
			}
			return
		}
	}
}
