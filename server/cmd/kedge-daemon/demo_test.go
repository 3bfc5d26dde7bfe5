package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/server/demo"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostState renders what a demo must leave alone: the host namespace's
// routes, rules, links and addresses exactly; the default dataplane paths
// a daemon would use outside the demo (the /sys/fs/bpf/kedge pins, the
// /dev/shm/kedge-governance segment, the /run/kedge socket); and whether
// the instance's own namespace and pin dir exist, and any WireGuard lock
// its data dir left. (The machine is shared: other tests add and remove
// namespaces and pins of their own meanwhile, so those lists are checked
// for this instance's entries, not compared whole.)
func hostState(t *testing.T, ns, pinDir, dataDir string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"},
		{"rule", "show"}, {"-6", "rule", "show"}, {"-o", "link", "show"}, {"-o", "addr", "show"},
	} {
		fmt.Fprintf(&b, "ip %s:\n%s", strings.Join(args, " "), ipOut(t, args...))
	}
	fmt.Fprintf(&b, "default pins: %s\n", pinDump(t, "/sys/fs/bpf/kedge"))
	fmt.Fprintf(&b, "default segment: %s\n", hex.EncodeToString(fileBytes(t, "/dev/shm/kedge-governance")))
	_, err := os.Lstat("/run/kedge/kedge.sock")
	fmt.Fprintf(&b, "default socket exists: %v\n", err == nil)
	_, err = os.Lstat("/run/netns/" + ns)
	fmt.Fprintf(&b, "netns %s exists: %v\n", ns, err == nil)
	fmt.Fprintf(&b, "pin dir: %s\n", pinDump(t, pinDir))
	locks, _ := filepath.Glob("/var/run/wireguard/*.kedge.lock")
	for _, l := range locks {
		if strings.Contains(string(fileBytes(t, l)), dataDir) {
			fmt.Fprintf(&b, "wireguard lock of this data dir: %s\n", l)
		}
	}
	return b.String()
}

// dirNames lists a directory's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestDemoStaysInItsNamespaceAndCleansUp (issue 11 item 11): the demo
// (what make run runs) as root programs routes, its BPF map and its
// segment only inside its own namespace, its per-instance pin dir and its
// data dir, and says where to look; demo-clean refuses while it runs and,
// after a kill -9, removes everything it left, so the host is as before.
func TestDemoStaysInItsNamespaceAndCleansUp(t *testing.T) {
	needKernel(t, "runs the demo node in a network namespace with BPF pins")
	bin := buildDaemon(t)
	dir := filepath.Join(t.TempDir(), "var")
	ns := "kd-demo-" + testID
	pinDir := demo.Plan(dir, ns, true).PinDir
	if pinDir == "off" {
		t.Fatal("no per-instance pin dir although bpffs is mounted")
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		os.RemoveAll(pinDir)
	})
	before := hostState(t, ns, pinDir, dir)

	// Exactly what make run and make clean-run run, with this test's
	// data dir, port and namespace.
	runArgs := makeRecipe(t, "run", "RUN_DIR="+dir, "RUN_LISTEN=127.0.0.1:0", "RUN_NETNS="+ns)
	cleanArgs := makeRecipe(t, "clean-run", "RUN_DIR="+dir)
	if runArgs[0] != "demo" || cleanArgs[0] != "demo-clean" {
		// Do not start a daemon on the host's own resources.
		t.Fatalf("make run runs %q and make clean-run %q, want the demo verbs", runArgs, cleanArgs)
	}
	var stdout syncBuffer
	cmd := exec.Command(bin, runArgs...)
	cmd.Stdout = &stdout
	p := startCmd(t, cmd)
	addr := p.waitLine(t, tcpLine)
	p.waitLine(t, unixLine)
	waitFor(t, "the guide on stdout", 10*time.Second, func() bool { return strings.Contains(stdout.String(), "clean-run") })
	guide := stdout.String()
	for _, want := range []string{"ip -n " + ns + " route show proto 107", "ls " + pinDir,
		filepath.Join(dir, demo.SegmentFile), filepath.Join(dir, demo.SocketFile), addr,
		"make clean-run", "kedge-daemon demo-clean --data-dir " + dir} {
		if !strings.Contains(guide, want) {
			t.Errorf("the guide does not say %q:\n%s", want, guide)
		}
	}

	c := unixClient(t, filepath.Join(dir, demo.SocketFile))
	// The README's example route, and a posture level for the map and
	// the segment to hold.
	setJSON(t, c, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config", `{"next-hop":"192.0.2.1","device":"eth0"}`)
	setJSON(t, c, "/kedge/posture/config/level", `3`)
	waitFor(t, "the route in the demo's namespace", 30*time.Second, func() bool {
		return strings.Contains(ipOut(t, "-n", ns, "route", "show", "proto", "107"), "10.20.0.0/16 via 192.0.2.1 dev eth0")
	})
	waitFor(t, "level 3 in the demo's BPF map", 30*time.Second, func() bool {
		return strings.Contains(pinDump(t, pinDir), "posture_level: 00000000=03000000")
	})
	if fileBytes(t, filepath.Join(dir, demo.SegmentFile)) == nil {
		t.Error("no segment in the data dir")
	}
	during := hostState(t, ns, pinDir, dir)
	wantDuring := strings.Replace(before, "netns "+ns+" exists: false", "netns "+ns+" exists: true", 1)
	wantDuring = strings.Replace(wantDuring, "pin dir: absent", "pin dir: "+pinDump(t, pinDir), 1)
	if during != wantDuring {
		t.Errorf("the demo touched the host outside its namespace, pin dir and data dir.\nbefore:\n%s\nduring:\n%s", before, during)
	}

	// While it runs, demo-clean removes nothing and names it.
	out, err := exec.Command(bin, cleanArgs...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "nothing removed") ||
		!strings.Contains(string(out), fmt.Sprintf("pid %d", p.cmd.Process.Pid)) {
		t.Errorf("demo-clean while the demo runs: %v\n%s", err, out)
	}
	if after := hostState(t, ns, pinDir, dir); after != during {
		t.Errorf("a refused demo-clean changed the host:\n%s", after)
	}

	// Killed, the demo leaves its socket and lock files; demo-clean
	// removes them with the rest.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	out, err = exec.Command(bin, cleanArgs...).CombinedOutput()
	if err != nil {
		t.Fatalf("demo-clean: %v\n%s", err, out)
	}
	for _, want := range []string{"deleted network namespace " + ns, "removed BPF pin dir " + pinDir,
		filepath.Join(dir, demo.SegmentFile), filepath.Join(dir, demo.SocketFile), "kedge.lock (left by a killed daemon)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo-clean output does not say %q:\n%s", want, out)
		}
	}
	if after := hostState(t, ns, pinDir, dir); after != before {
		t.Errorf("the host after demo-clean differs from before the demo.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// What stays in the data dir is the node's tree and identity only.
	if got, want := dirNames(t, dir), []string{"master.password", "notary", "store", "tls", "underlay", "users.yaml", "wireguard.key"}; !equalStrings(got, want) {
		t.Errorf("data dir after demo-clean: %v, want %v", got, want)
	}
	if out, err := exec.Command(bin, cleanArgs...).CombinedOutput(); err != nil || !strings.Contains(string(out), "nothing to clean") {
		t.Errorf("a second demo-clean: %v\n%s", err, out)
	}
}

// makeRecipe returns the kedge-daemon arguments a make target runs (make
// -n, with vars), failing when it runs no ./bin/kedge-daemon.
func makeRecipe(t *testing.T, target string, vars ...string) []string {
	t.Helper()
	makeBin := needs.Tool(t, "make", "reads the Makefile's recipe")
	out, err := exec.Command(makeBin, append([]string{"-s", "-n", "-C", "../../..", target}, vars...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "./bin/kedge-daemon" {
			return f[1:]
		}
	}
	t.Fatalf("make %s runs no ./bin/kedge-daemon:\n%s", target, out)
	return nil
}

// TestDemoAsNonRoot: make run's daemon started by another user works
// (the tree is served) and changes no kernel state: no namespace, no
// pins, its segment and socket in the data dir; demo-clean, as that
// user, removes those.
func TestDemoAsNonRoot(t *testing.T) {
	needKernel(t, "starts the demo as the user nobody")
	bin := buildDaemon(t)
	// nobody must reach the binary and own the data dir.
	base, err := os.MkdirTemp("", "kedge-demo-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	nbin := filepath.Join(base, "kedge-daemon")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nbin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "var")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	ns := "kd-demo-nr-" + testID
	pinDir := demo.Plan(dir, ns, true).PinDir
	before := hostState(t, ns, pinDir, dir)
	asNobody := func(args ...string) *exec.Cmd {
		c := exec.Command(nbin, args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		c.Dir = base
		return c
	}

	runArgs := makeRecipe(t, "run", "RUN_DIR="+dir, "RUN_LISTEN=127.0.0.1:0", "RUN_NETNS="+ns)
	if runArgs[0] != "demo" {
		t.Fatalf("make run runs %q, want the demo verb", runArgs)
	}
	var stdout syncBuffer
	cmd := asNobody(runArgs...)
	cmd.Stdout = &stdout
	p := startCmd(t, cmd)
	p.waitLine(t, unixLine)
	waitFor(t, "the guide on stdout", 10*time.Second, func() bool { return strings.Contains(stdout.String(), "clean-run") })
	if !strings.Contains(stdout.String(), "not as root: no network namespace and no kernel state") {
		t.Errorf("the guide does not say it runs without kernel state:\n%s", stdout.String())
	}
	c := unixClient(t, filepath.Join(dir, demo.SocketFile))
	setJSON(t, c, "/kedge/posture/config/level", `3`)
	waitFor(t, "the level applied", 30*time.Second, func() bool {
		return getLeaves(t, c, "/kedge/posture/state/effective-level")["/kedge/posture/state/effective-level"] == "3"
	})
	if fileBytes(t, filepath.Join(dir, demo.SegmentFile)) == nil {
		t.Error("no segment in the data dir")
	}
	if after := hostState(t, ns, pinDir, dir); after != before {
		t.Errorf("a non-root demo changed the host.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	out, err := asNobody(makeRecipe(t, "clean-run", "RUN_DIR="+dir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("demo-clean as nobody: %v\n%s", err, out)
	}
	if got, want := dirNames(t, dir), []string{"master.password", "notary", "store", "tls", "underlay", "users.yaml", "wireguard.key"}; !equalStrings(got, want) {
		t.Errorf("data dir after demo-clean: %v, want %v\n%s", got, want, out)
	}
	if after := hostState(t, ns, pinDir, dir); after != before {
		t.Errorf("the host after demo-clean differs.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
