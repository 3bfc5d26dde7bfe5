package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/guildhouse-co/kedge/tests/needs"
)

// resources are the host-wide things one daemon uses.
type resources struct {
	dataDir, listen, socket, netns, shm, pins string
}

func (r resources) args(extra ...string) []string {
	return append([]string{"--data-dir", r.dataDir, "--listen", r.listen, "--socket", r.socket, "--netns", r.netns,
		"--shm-path", r.shm, "--bpf-pin-dir", r.pins, "--node-name", "second-" + testID}, extra...)
}

// removeAtCleanup removes a daemon's segment, pins and lock files.
func removeAtCleanup(t *testing.T, r resources) {
	t.Cleanup(func() {
		os.Remove(r.shm)
		os.Remove(r.shm + ".lock")
		os.RemoveAll(r.pins)
	})
}

var (
	tcpLine  = regexp.MustCompile(`msg="gNMI listening" tcp=(\S+)`)
	unixLine = regexp.MustCompile(`msg="gNMI listening" unix=(\S+)`)
)

// TestSecondInstanceChangesNothing (issue 11 item 10): daemon A runs with
// routes in a namespace, a BPF map, a VPP segment and a mesh device; B,
// with its own data dir, is pointed at each of A's resources alone, then
// at all of them. B must fail naming A (pid and data dir) and every
// resource it found held, and A's routes, map, segment and device must be
// byte-for-byte as they were. Then A is killed with SIGKILL and a daemon
// starts on the same resources, adopting A's routes, and releases every
// lock file on a clean stop.
func TestSecondInstanceChangesNothing(t *testing.T) {
	needKernel(t, "runs two daemons with routes, a BPF map, a VPP segment and a WireGuard device")
	needs.TUN(t)
	bin := buildDaemon(t)
	nsA, nsB := "kd-a-"+testID, "kd-b-"+testID
	newNetns(t, nsA, "10.199.0.2/24")
	newNetns(t, nsB, "")
	iface := "kd" + testID
	t.Cleanup(func() {
		os.Remove(filepath.Join("/var/run/wireguard", iface+".sock"))
		os.Remove(deviceLock(iface))
	})

	a := resources{dataDir: t.TempDir(), listen: "127.0.0.1:0", netns: nsA,
		shm: "/dev/shm/kedge-test-" + testID + "-a", pins: "/sys/fs/bpf/kedge-test-" + testID + "-a"}
	a.socket = filepath.Join(a.dataDir, "kedge.sock")
	removeAtCleanup(t, a)
	pA := startProc(t, bin, a.args()...)
	a.listen = pA.waitLine(t, tcpLine)
	pA.waitLine(t, unixLine)
	c := unixClient(t, a.socket)
	setJSON(t, c, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config", `{"next-hop":"10.199.0.1","device":"eth0"}`)
	setJSON(t, c, "/kedge/routes/route[prefix=10.21.0.0/16][table=254]/config", `{"device":"eth0"}`)
	setJSON(t, c, "/kedge/posture/config/level", `4`)
	setJSON(t, c, "/kedge/mesh/config", fmt.Sprintf(`{"interface":%q,"listen-port":51977,"addresses":["10.198.0.1/24"]}`, iface))
	routes := func(ns string) string {
		return ipOut(t, "-n", ns, "route", "show", "table", "all", "proto", "107") +
			ipOut(t, "-n", ns, "-6", "route", "show", "table", "all", "proto", "107")
	}
	waitFor(t, "A's routes installed", 30*time.Second, func() bool { return strings.Count(routes(nsA), "\n") == 2 })
	waitFor(t, "A at effective level 4", 30*time.Second, func() bool {
		return getLeaves(t, c, "/kedge/posture/state/effective-level")["/kedge/posture/state/effective-level"] == "4"
	})
	waitFor(t, "A's mesh up", 30*time.Second, func() bool {
		return getLeaves(t, c, "/kedge/mesh/state/status")["/kedge/mesh/state/status"] == "up"
	})
	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	snapshot := func() string {
		dev := "no device"
		if d, err := wg.Device(iface); err == nil {
			dev = fmt.Sprintf("device %s port %d key %s peers %d", d.Name, d.ListenPort, d.PublicKey, len(d.Peers))
		}
		return "routes:\n" + routes(nsA) + "pins:\n" + pinDump(t, a.pins) + "\nsegment: " +
			hex.EncodeToString(fileBytes(t, a.shm)) + "\n" + dev + "\nlinks:\n" + ipOut(t, "-n", nsA, "-o", "link", "show")
	}
	before := snapshot()
	if !strings.Contains(before, "posture_level: 00000000=04000000") || fileBytes(t, a.shm) == nil {
		t.Fatalf("A's BPF map or segment is not at level 4:\n%s", before)
	}
	holder := fmt.Sprintf("is held by pid %d (kedge-daemon, data dir %s)", pA.cmd.Process.Pid, a.dataDir)

	// B's own resources; each case points some of them at A's.
	own := func(t *testing.T) resources {
		b := resources{dataDir: t.TempDir(), listen: "127.0.0.1:0", netns: nsB,
			shm: "/dev/shm/kedge-test-" + testID + "-b", pins: "/sys/fs/bpf/kedge-test-" + testID + "-b"}
		b.socket = filepath.Join(b.dataDir, "kedge.sock")
		removeAtCleanup(t, b)
		return b
	}
	// withMesh gives B's tree the same mesh interface as A's (a run with
	// the dataplane off, which claims no device).
	withMesh := func(t *testing.T, b resources) {
		p := startProc(t, bin, b.args("--dataplane", "off")...)
		p.waitLine(t, unixLine)
		setJSON(t, unixClient(t, b.socket), "/kedge/mesh/config", fmt.Sprintf(`{"interface":%q}`, iface))
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t); err != nil {
			t.Fatalf("preparing B's tree: %v\n%s", err, p.log.String())
		}
	}
	for _, tc := range []struct {
		name  string
		point func(t *testing.T, b *resources)
		want  []string
	}{
		{"listener", func(_ *testing.T, b *resources) { b.listen = a.listen }, []string{"TCP address " + a.listen}},
		{"unix socket", func(_ *testing.T, b *resources) { b.socket = a.socket }, []string{"unix socket " + a.socket}},
		{"VPP segment", func(_ *testing.T, b *resources) { b.shm = a.shm }, []string{"VPP governance segment " + a.shm}},
		{"BPF pin dir", func(_ *testing.T, b *resources) { b.pins = a.pins }, []string{"BPF pin dir " + a.pins}},
		{"route protocol", func(_ *testing.T, b *resources) { b.netns = nsA }, []string{"route protocol 107 in network namespace " + nsA}},
		{"mesh device", func(t *testing.T, b *resources) { withMesh(t, *b) }, []string{"WireGuard device name " + iface}},
		{"all at once", func(t *testing.T, b *resources) {
			withMesh(t, *b)
			b.listen, b.socket, b.shm, b.pins, b.netns = a.listen, a.socket, a.shm, a.pins, nsA
		}, []string{"TCP address " + a.listen, "unix socket " + a.socket, "VPP governance segment " + a.shm,
			"BPF pin dir " + a.pins, "route protocol 107 in network namespace " + nsA, "WireGuard device name " + iface}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine := own(t)
			b := mine
			tc.point(t, &b)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, b.args()...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("B: %v, want exit status 1; output:\n%s", err, out)
			}
			for _, w := range append(tc.want, holder) {
				if !strings.Contains(string(out), w) {
					t.Errorf("B's output does not say %q:\n%s", w, out)
				}
			}
			t.Logf("B's refusal:\n%s", out[strings.LastIndex(string(out[:len(out)-1]), "\n")+1:])
			if n := strings.Count(string(out), " is held by "); n != len(tc.want) {
				t.Errorf("B reports %d held resources, want %d:\n%s", n, len(tc.want), out)
			}
			if after := snapshot(); after != before {
				t.Errorf("A's dataplane changed.\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// B left nothing of its own either.
			if b.shm == mine.shm {
				mustNotExist(t, "B's segment", mine.shm, mine.shm+".lock")
			}
			if b.pins == mine.pins {
				mustNotExist(t, "B's pin dir", mine.pins)
			}
			if b.socket == mine.socket {
				mustNotExist(t, "B's socket", mine.socket, mine.socket+".lock")
			}
			mustNotExist(t, "B's data dir lock", filepath.Join(mine.dataDir, "kedge.lock"))
			if r := routes(nsB); r != "" {
				t.Errorf("B programmed routes in its own namespace:\n%s", r)
			}
		})
	}

	// kill -9 leaves no lock that blocks: A's resources start again (its
	// data dir too), the routes adopted without change.
	if err := pA.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pA.wait(t)
	routesBefore := routes(nsA)
	p2 := startProc(t, bin, a.args()...)
	p2.waitLine(t, tcpLine)
	p2.waitLine(t, unixLine)
	c2 := unixClient(t, a.socket)
	waitFor(t, "the restarted daemon's mesh up", 30*time.Second, func() bool {
		return getLeaves(t, c2, "/kedge/mesh/state/status")["/kedge/mesh/state/status"] == "up"
	})
	if r := routes(nsA); r != routesBefore {
		t.Errorf("routes after restart:\n%s\nwant:\n%s", r, routesBefore)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.wait(t); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, p2.log.String())
	}
	// A clean stop releases every lock file (the segment and pins stay:
	// they are the node's state).
	mustNotExist(t, "after a clean stop", filepath.Join(a.dataDir, "kedge.lock"), a.socket, a.socket+".lock",
		a.shm+".lock", deviceLock(iface))
}

// deviceLock is where a mesh device name's lock file is (beside
// wireguard-go's UAPI sockets, whose names are host-wide).
func deviceLock(iface string) string { return "/var/run/wireguard/" + iface + ".kedge.lock" }
