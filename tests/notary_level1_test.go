package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
)

const level1Env = "KEDGE_NOTARY_L1"

// Addresses inside the test namespace: the Quartermaster receiver, a
// monitoring endpoint, a management endpoint of another service, and an
// address no endpoint names.
const (
	l1QM      = "10.210.0.2"
	l1Monitor = "10.211.0.2"
	l1Spire   = "10.212.0.2"
	l1Other   = "10.213.0.2"
	l1QMPort  = "7900"
)

// TestNotaryLevel1Child is the daemon of TestNotaryLevel1Reachability,
// running inside the enforced cgroup and the test namespace; on stdin it
// takes "probe ADDR,..." and answers with each destination's fate. It
// does nothing unless started by the parent.
func TestNotaryLevel1Child(t *testing.T) {
	env := os.Getenv(level1Env)
	if env == "" {
		t.Skip("child process of TestNotaryLevel1Reachability; runs only when started by it")
	}
	var dir, pins, cgroup string
	fmt.Sscanf(env, "%s %s %s", &dir, &pins, &cgroup)
	c := config.Defaults()
	c.DataDir, c.Listen, c.Socket, c.NodeName = dir, "", filepath.Join(dir, "kedge.sock"), "l1-node"
	c.ShmPath, c.BPFPinDir, c.EnforceCgroup, c.MetricsListen = "off", pins, cgroup, "off"
	c.Quartermaster, c.QuartermasterInsecure = net.JoinHostPort(l1QM, l1QMPort), true
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	d, err := server.Start(c, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(5 * time.Second)
	fmt.Printf("ready\n")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		dsts, ok := strings.CutPrefix(sc.Text(), "probe ")
		if !ok {
			continue
		}
		var out []string
		for _, dst := range strings.Split(dsts, ",") {
			r, err := udpProbe(dst)
			if err != nil {
				r = "error: " + err.Error()
			}
			out = append(out, dst+"="+r)
		}
		fmt.Printf("result %s\n", strings.Join(out, ","))
	}
}

// udpProbe binds a receiver on dst (a local address of the namespace) and
// sends it one datagram: "delivered", "dropped-eperm" (the egress program
// refused it) or "dropped-timeout".
func udpProbe(dst string) (string, error) {
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(dst)})
	if err != nil {
		return "", err
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return "", err
	}
	defer tx.Close()
	if _, err := tx.Write([]byte("kedge")); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return "dropped-eperm", nil
		}
		return "", err
	}
	// A local datagram arrives within microseconds; the deadline only
	// bounds the wait for one that was dropped silently.
	rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := rx.ReadFromUDP(make([]byte, 8)); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "dropped-timeout", nil
		}
		return "", err
	}
	return "delivered", nil
}

func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Skipf("read mounts: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

// TestNotaryLevel1Reachability: at level 1 a process in the enforced
// cgroup (here the daemon itself, which a DaemonSet pod would be) reaches
// the Quartermaster receiver and the monitoring endpoint and nothing else;
// the forensic snapshot and the records made at level 1 arrive at
// Quartermaster through the egress program.
func TestNotaryLevel1Reachability(t *testing.T) {
	needRoot(t)
	if os.Getenv(level1Env) != "" {
		t.Skip("inside the child")
	}
	tag := fmt.Sprintf("%d%d", os.Getpid()%10000, rand.IntN(10000))
	cg := filepath.Join(cgroup2Mount(t), "kedge-notary-l1-"+tag)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(cg)
			if err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				return
			}
			runtime.Gosched()
		}
	})
	pins := "/sys/fs/bpf/kedge-tests-notary-l1-" + tag
	t.Cleanup(func() { os.RemoveAll(pins) })
	ns := "knl1" + tag
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	va, vb := "kl1a"+tag, "kl1b"+tag
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", va, "type", "veth", "peer", "name", vb},
		{"link", "set", va, "up"}, {"link", "set", vb, "up"},
		{"addr", "add", l1QM + "/24", "dev", vb}, {"addr", "add", l1Monitor + "/24", "dev", vb},
		{"addr", "add", l1Spire + "/24", "dev", vb}, {"addr", "add", l1Other + "/24", "dev", vb},
	} {
		ipCmd(t, append([]string{"-n", ns}, args...)...)
	}
	// Quartermaster listens inside the namespace (outside the cgroup).
	lnc := make(chan net.Listener, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // this thread enters the namespace and is retired
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			errc <- err
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(l1QM, l1QMPort))
		if err != nil {
			errc <- err
			return
		}
		lnc <- ln
	}()
	var ln net.Listener
	select {
	case ln = <-lnc:
	case err := <-errc:
		t.Fatal(err)
	}
	r := startReceiver(t, ln)

	// The daemon: inside the cgroup from its first instruction (clone
	// into the cgroup), inside the namespace from exec (nsenter).
	dir := t.TempDir()
	cgf, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer cgf.Close()
	// nsenter, not ip netns exec: that one remounts /sys, which hides the
	// cgroup the daemon must attach its program to.
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skipf("nsenter (util-linux) not found: %v", err)
	}
	cmd := exec.Command(nsenter, "--net=/var/run/netns/"+ns, os.Args[0], "-test.run=^TestNotaryLevel1Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), level1Env+"="+dir+" "+pins+" "+cg)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgf.Fd())}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		stdin.Close()
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	readLine := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return rest
			}
		}
		t.Fatalf("daemon exited waiting for %q: %s", prefix, stderr.String())
		return ""
	}
	readLine("ready")
	c := unixClient(t, filepath.Join(dir, "kedge.sock"))
	probe := func(level int, want map[string]string) {
		t.Helper()
		dsts := []string{l1QM, l1Monitor, l1Spire, l1Other, "127.0.0.1"}
		io.WriteString(stdin, "probe "+strings.Join(dsts, ",")+"\n")
		got := map[string]string{}
		for _, kv := range strings.Split(readLine("result "), ",") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		for d, w := range want {
			if got[d] != w {
				t.Errorf("level %d: %s %s, want %s", level, d, got[d], w)
			}
		}
	}
	// The endpoints, as an operator declares them.
	var ups []*gpb.Update
	for _, ep := range [][4]string{
		{"qm", "management", l1QM + "/32", accord.ServiceQuartermaster},
		{"metrics", "monitoring", l1Monitor + "/32", "prometheus"},
		{"spire", "management", l1Spire + "/32", "spire"},
	} {
		ups = append(ups, &gpb.Update{Path: path(t, "/kedge/routes/endpoints/endpoint[name="+ep[0]+"]/config"),
			Val: jsonVal(fmt.Appendf(nil, `{"name":%q,"kind":%q,"prefix":%q,"service":%q}`, ep[0], ep[1], ep[2], ep[3]))})
	}
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: ups}); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{l1QM: "delivered", l1Monitor: "delivered", l1Spire: "delivered", l1Other: "delivered", "127.0.0.1": "delivered"}
	probe(5, all)

	setLevel(t, c, 1)
	waitLeaf(t, c, "/kedge/notary/state/level", "1")
	probe(1, map[string]string{l1QM: "delivered", l1Monitor: "delivered", l1Spire: "dropped-eperm", l1Other: "dropped-eperm", "127.0.0.1": "delivered"})
	// A change made at level 1, then everything recorded so far must
	// reach Quartermaster through the egress program.
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/routes/endpoints/endpoint[name=metrics]/config/service"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "node-exporter"}}}}}); err != nil {
		t.Fatal(err)
	}
	origin := "kedge.notary/l1-node"
	timeout := time.After(60 * time.Second)
	for done := false; !done; {
		ch := r.Changed()
		es, _ := r.Entries(origin, 0)
		forensic, atOne := false, false
		for _, e := range es {
			if f := e.GetForensicSnapshot(); f != nil && f.GetToLevel() == 1 {
				forensic = true
			}
			if m := e.GetNetworkMutation(); m != nil && m.GetPostureLevel() == 1 {
				atOne = true
			}
		}
		if done = forensic && atOne; done {
			break
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("at level 1 Quartermaster got: forensic snapshot %v, a level-1 mutation %v (%d entries)", forensic, atOne, len(es))
		}
	}
	setLevel(t, c, 5)
	waitLeaf(t, c, "/kedge/notary/state/level", "5")
	probe(5, all)
}
