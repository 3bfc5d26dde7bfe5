package plugin_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/cni/internal/testdaemon"
	"github.com/guildhouse-co/kedge/cni/plugin"
	"github.com/guildhouse-co/kedge/cni/registry"
)

// TestCnitool drives ADD and DEL with the upstream cnitool against a real
// conflist in a temporary NETCONFPATH and CNI_PATH.
func TestCnitool(t *testing.T) {
	needRoot(t)
	cnitool := buildTool(t, "cnitool", "github.com/containernetworking/cni/cnitool")
	d := testdaemon.Start(t, true)
	confDir := t.TempDir()
	list := map[string]any{"cniVersion": "1.1.0", "name": "kedgetool", "plugins": []any{
		map[string]any{"type": "kedge", "socket": d.Socket, "ipam": map[string]any{"type": "kedge", "pools": []string{"10.67.0.0/24"}}},
	}}
	b, _ := json.Marshal(list)
	if err := os.WriteFile(filepath.Join(confDir, "10-kedge.conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	nsPath := newNS(t)
	tool := func(verb string) []byte {
		cmd := exec.Command(cnitool, verb, "kedgetool", nsPath)
		cmd.Env = []string{"NETCONFPATH=" + confDir, "CNI_PATH=" + binDir, "CNI_IFNAME=eth0", "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s", verb, err, out)
		}
		return out
	}
	tool("add")
	if v := inspect(t, nsPath, "eth0"); !slices.Equal(v.Addrs, []string{"10.67.0.2/32"}) || v.Gateway != "10.67.0.1" {
		t.Fatalf("after cnitool add: %+v", v)
	}
	ps := pods(t, d.Socket)
	if len(ps) != 1 || ps[0].Netns != nsPath {
		t.Fatalf("registry after cnitool add: %+v", ps)
	}
	host := ps[0].HostIfName
	tool("check")
	tool("del")
	if ps := pods(t, d.Socket); len(ps) != 0 || hostLinkExists(host) {
		t.Fatalf("after cnitool del: pods %+v, veth %s exists %v", ps, host, hostLinkExists(host))
	}
}

// TestRealDaemon runs kedge-daemon itself on a temporary socket (root is
// master on it) and drives ADD, CHECK, STATUS and DEL against it.
func TestRealDaemon(t *testing.T) {
	needRoot(t)
	// The plugin's side only: the daemon touches no kernel state.
	sock := startRealDaemon(t, "--dataplane", "off")
	waitDaemon(t, sock)
	setPools(t, sock, `["10.68.0.0/24"]`)

	nsPath := newNS(t)
	cid := "cniplugin-real-" + suffix()
	conf := netConf(t, "1.1.0", sock, nil)
	inv := invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "eth0", args: "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1"}
	r := runCNI(t, kedgeBin(), inv, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d %s", r.code, r.stdout)
	}
	if v := inspect(t, nsPath, "eth0"); !slices.Equal(v.Addrs, []string{"10.68.0.2/32"}) || v.Gateway != "10.68.0.1" {
		t.Fatalf("pod view %+v", v)
	}
	p := podByID(pods(t, sock), cid, "eth0")
	if p == nil || p.Namespace != "ns1" || p.Name != "p1" || p.HostIfName != plugin.HostVethName(cid, "eth0") || p.Tier != "operator" {
		t.Fatalf("registration %+v", p)
	}
	inv.cmd = "CHECK"
	if r := runCNI(t, kedgeBin(), inv, withPrev(t, conf, r.stdout)); r.code != 0 {
		t.Fatalf("CHECK: %s", r.stdout)
	}
	if r := runCNI(t, kedgeBin(), invocation{cmd: "STATUS", noNetns: true}, conf); r.code != 0 {
		t.Fatalf("STATUS: %s", r.stdout)
	}
	inv.cmd = "DEL"
	if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
		t.Fatalf("DEL: %s", r.stdout)
	}
	if p := podByID(pods(t, sock), cid, "eth0"); p != nil || hostLinkExists(plugin.HostVethName(cid, "eth0")) {
		t.Fatalf("left after DEL: %+v", p)
	}
}

// startRealDaemon runs the kedge-daemon binary on a socket in a temp dir
// (no TCP listener, no VPP segment or BPF pins at the host's default
// paths), waits until it answers, and stops it at cleanup, showing its
// log if the test failed. It returns the socket path.
func startRealDaemon(t *testing.T, args ...string) string {
	t.Helper()
	daemon := buildTool(t, "kedge-daemon", "github.com/guildhouse-co/kedge/server/cmd/kedge-daemon")
	dir := t.TempDir()
	sock := filepath.Join(dir, "kedge.sock")
	args = append([]string{"--socket", sock, "--data-dir", filepath.Join(dir, "data"), "--listen", "",
		"--shm-path", "off", "--bpf-pin-dir", "off", "--log-level", "warn"}, args...)
	cmd := exec.Command(daemon, args...)
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("daemon log:\n%s", b)
		}
	})
	waitDaemon(t, sock)
	return sock
}

// waitDaemon waits, with a deadline, until the daemon answers on sock.
func waitDaemon(t testing.TB, sock string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := registry.Dial(sock)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = c.Ping(ctx)
			cancel()
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon on %s not ready: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestDelegatedIPAM: a non-kedge ipam.type is run with pkg/invoke; its
// allocation is registered, released on DEL, and released on a failed ADD.
func TestDelegatedIPAM(t *testing.T) {
	needRoot(t)
	buildTool(t, "host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local")
	d := testdaemon.Start(t, true)
	dataDir := t.TempDir()
	conf := netConf(t, "1.1.0", d.Socket, map[string]any{"ipam": map[string]any{
		"type": "host-local", "dataDir": dataDir, "ranges": [][]map[string]string{{{"subnet": "10.66.0.0/24"}}}}})
	nsPath := newNS(t)
	cid := "cniplugin-deleg-" + suffix()
	inv := invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "eth0"}
	r := runCNI(t, kedgeBin(), inv, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d %s", r.code, r.stdout)
	}
	if v := inspect(t, nsPath, "eth0"); !slices.Equal(v.Addrs, []string{"10.66.0.2/32"}) || v.Gateway != "10.66.0.1" {
		t.Fatalf("pod view %+v", v)
	}
	if p := podByID(pods(t, d.Socket), cid, "eth0"); p == nil || len(p.Addresses) != 1 || p.Addresses[0].String() != "10.66.0.2/32" {
		t.Fatalf("registration %+v", p)
	}
	inv.cmd = "DEL"
	if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
		t.Fatalf("DEL: %s", r.stdout)
	}
	if n := hostLocalLeases(t, dataDir); n != 0 {
		t.Fatalf("%d host-local leases after DEL", n)
	}
	// A failed ADD (the pod already has "lo") gives the lease back.
	inv.cmd, inv.ifname = "ADD", "lo"
	if r := runCNI(t, kedgeBin(), inv, conf); r.code == 0 || r.err(t).Code != plugin.ErrLink {
		t.Fatalf("ADD onto lo: exit %d %s", r.code, r.stdout)
	}
	if n := hostLocalLeases(t, dataDir); n != 0 {
		t.Fatalf("%d host-local leases after failed ADD", n)
	}
	if ps := pods(t, d.Socket); len(ps) != 0 {
		t.Fatalf("registrations after failed ADD: %+v", ps)
	}
}

// hostLocalLeases counts host-local's per-address lease files.
func hostLocalLeases(t testing.TB, dataDir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dataDir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && net.ParseIP(e.Name()) != nil {
			n++
		}
		return nil
	})
	return n
}
