package plugin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/vishvananda/netlink"

	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// bins holds the binaries TestMain builds once: the plugin, and (lazily)
// the reference plugins and cnitool.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cniplugin-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if os.Geteuid() == 0 {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kedge"), "github.com/guildhouse-co/kedge/cni/cmd/kedge-cni").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build kedge-cni: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// buildTool builds a Go main package into binDir once.
func buildTool(t testing.TB, name, pkg string) string {
	t.Helper()
	out := filepath.Join(binDir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func needRoot(t testing.TB) {
	t.Helper()
	needs.Root(t, "creates network namespaces and veth pairs")
}

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newNS creates a named network namespace unique to this test run and
// removes it at cleanup.
func newNS(t testing.TB) string {
	t.Helper()
	name := "cniplugin-" + suffix()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// cniResult is what runCNI saw.
type cniResult struct {
	code   int    // process exit code
	stdout []byte // result or error JSON
	stderr string
	cpu    time.Duration // user+system time of the plugin and its reaped children
}

// cniError is the specification's error object.
type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details"`
}

func (r cniResult) err(t testing.TB) cniError {
	t.Helper()
	var e cniError
	if err := json.Unmarshal(r.stdout, &e); err != nil {
		t.Fatalf("error JSON %q: %v", r.stdout, err)
	}
	return e
}

// invocation is one CNI call's environment.
type invocation struct {
	cmd, containerID, netns, ifname, args string
	path                                  string // CNI_PATH (default binDir)
	noNetns                               bool
}

// runCNI execs the plugin binary as a runtime would.
func runCNI(t testing.TB, bin string, inv invocation, stdin []byte) cniResult {
	t.Helper()
	env := []string{"CNI_COMMAND=" + inv.cmd, "CNI_CONTAINERID=" + inv.containerID, "CNI_IFNAME=" + inv.ifname,
		"CNI_PATH=" + first(inv.path, binDir), "PATH=" + os.Getenv("PATH")}
	if !inv.noNetns {
		env = append(env, "CNI_NETNS="+inv.netns)
	}
	if inv.args != "" {
		env = append(env, "CNI_ARGS="+inv.args)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	return cniResult{code: code, stdout: out.Bytes(), stderr: errb.String(), cpu: cpu}
}

func first(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func kedgeBin() string { return filepath.Join(binDir, "kedge") }

// netConf renders a kedge conf; extra fields are merged in.
func netConf(t testing.TB, version, socket string, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{"cniVersion": version, "name": "kedgetest", "type": "kedge", "socket": socket}
	for k, v := range extra {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withPrev adds a prevResult to a conf.
func withPrev(t testing.TB, conf, prev []byte) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		t.Fatal(err)
	}
	c["prevResult"] = json.RawMessage(prev)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podView is what the pod's netns looks like: its interface's addresses
// and its default route's gateway.
type podView struct {
	Addrs   []string
	Gateway string
	Up      bool
}

func inspect(t testing.TB, nsPath, ifname string) podView {
	t.Helper()
	netns, err := ns.GetNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	var v podView
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		v.Up = l.Attrs().Flags&net.FlagUp != 0
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			v.Addrs = append(v.Addrs, a.IPNet.String())
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				v.Gateway = r.Gw.String()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inspect %s in %s: %v", ifname, nsPath, err)
	}
	return v
}

// hostLinkExists reports whether a link exists in the test's (host) netns.
func hostLinkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// hostKedgeLinks lists kd* links in the host netns created by this run's
// containers (ids carry the run's prefix).
func pods(t testing.TB, socket string) []registry.Pod {
	t.Helper()
	c, err := registry.Dial(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := c.Pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func podByID(ps []registry.Pod, cid, ifname string) *registry.Pod {
	for i := range ps {
		if ps[i].ContainerID == cid && ps[i].IfName == ifname {
			return &ps[i]
		}
	}
	return nil
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// setPools writes /kedge/pods/config/ipam-pools (a JSON list).
func setPools(t testing.TB, socket, js string) {
	t.Helper()
	c, err := registry.Dial(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.GNMI().Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "kedge"}, {Name: "pods"}, {Name: "config"}, {Name: "ipam-pools"}}},
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
}

// delNS removes a namespace early (its cleanup then finds it gone).
func delNS(t testing.TB, nsPath string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(nsPath)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v %s", err, out)
	}
}

// inspectLinks lists the link names inside a netns.
func inspectLinks(t testing.TB, nsPath string) []string {
	t.Helper()
	netns, err := ns.GetNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	var names []string
	err = netns.Do(func(ns.NetNS) error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func mustJSONBytes(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
