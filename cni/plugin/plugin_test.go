package plugin_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/cni/internal/testdaemon"
	"github.com/guildhouse-co/kedge/cni/plugin"
	"github.com/guildhouse-co/kedge/cni/registry"
)

func parseResult(t testing.TB, ver string, out []byte) *current.Result {
	t.Helper()
	r, err := version.NewResult(ver, out)
	if err != nil {
		t.Fatalf("parse %s result %s: %v", ver, out, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestAddCheckDel follows the reference plugins' test shape: ADD from the
// host netns, look from inside the pod's netns and through gNMI, CHECK,
// DEL, and DEL again.
func TestAddCheckDel(t *testing.T) {
	needRoot(t)
	for _, ver := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(ver, func(t *testing.T) {
			d := testdaemon.Start(t, true)
			nsPath := newNS(t)
			cid := "cniplugin-" + suffix()
			conf := netConf(t, ver, d.Socket, map[string]any{"ipam": map[string]any{"type": "kedge", "pools": []string{"10.61.0.0/24"}}})
			inv := invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "eth0",
				args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;KEDGE_TIER=observer;KEDGE_MODE=underlay"}
			r := runCNI(t, kedgeBin(), inv, conf)
			if r.code != 0 {
				t.Fatalf("ADD exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			res := parseResult(t, ver, r.stdout)
			addOut := r.stdout
			host := plugin.HostVethName(cid, "eth0")
			t.Cleanup(func() {
				runCNI(t, kedgeBin(), invocation{cmd: "DEL", containerID: cid, netns: nsPath, ifname: "eth0"}, conf)
			})
			if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.61.0.2/32" || res.IPs[0].Gateway.String() != "10.61.0.1" {
				t.Fatalf("result IPs %+v", res.IPs)
			}
			if len(res.Interfaces) != 2 || res.Interfaces[0].Name != host || res.Interfaces[1].Sandbox != nsPath {
				t.Fatalf("result interfaces %+v", res.Interfaces)
			}
			// Inside the pod.
			want := podView{Addrs: []string{"10.61.0.2/32"}, Gateway: "10.61.0.1", Up: true}
			if diff := cmp.Diff(want, inspect(t, nsPath, "eth0")); diff != "" {
				t.Fatalf("pod netns (-want +got):\n%s", diff)
			}
			if !hostLinkExists(host) {
				t.Fatalf("host veth %s missing", host)
			}
			// Through gNMI.
			wantPod := registry.Pod{ContainerID: cid, IfName: "eth0", Netns: nsPath, Namespace: "prod", Name: "web-0",
				HostIfName: host, Tier: "observer", AllowedMode: "underlay", Addresses: []netip.Prefix{mustPrefix("10.61.0.2/32")}}
			if diff := cmp.Diff([]registry.Pod{wantPod}, pods(t, d.Socket), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Fatalf("registry (-want +got):\n%s", diff)
			}
			// CHECK with the ADD result as prevResult.
			inv.cmd = "CHECK"
			if r := runCNI(t, kedgeBin(), inv, withPrev(t, conf, addOut)); r.code != 0 {
				t.Fatalf("CHECK exit %d: %s", r.code, r.stdout)
			}
			// DEL, twice: the second finds nothing and still succeeds.
			inv.cmd = "DEL"
			for i := range 2 {
				if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
					t.Fatalf("DEL %d exit %d: %s", i, r.code, r.stdout)
				}
			}
			if hostLinkExists(host) {
				t.Fatalf("host veth %s left after DEL", host)
			}
			if ps := pods(t, d.Socket); len(ps) != 0 {
				t.Fatalf("registrations left after DEL: %+v", ps)
			}
			// CHECK after DEL fails: the pod is unknown.
			inv.cmd = "CHECK"
			if r := runCNI(t, kedgeBin(), inv, withPrev(t, conf, addOut)); r.code == 0 || r.err(t).Code != types.ErrUnknownContainer {
				t.Fatalf("CHECK after DEL: exit %d %s", r.code, r.stdout)
			}
		})
	}
}

// TestPoolsFromDaemon: without pools in the conf, the daemon's
// /kedge/pods/config/ipam-pools are used; DEL succeeds after the netns is
// gone.
func TestPoolsFromDaemon(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	setPools(t, d.Socket, `["10.62.0.0/28"]`)
	nsPath := newNS(t)
	cid := "cniplugin-" + suffix()
	conf := netConf(t, "1.1.0", d.Socket, nil)
	inv := invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "net1"}
	r := runCNI(t, kedgeBin(), inv, conf)
	if r.code != 0 {
		t.Fatalf("ADD exit %d: %s", r.code, r.stdout)
	}
	if v := inspect(t, nsPath, "net1"); !slices.Equal(v.Addrs, []string{"10.62.0.2/32"}) || v.Gateway != "10.62.0.1" {
		t.Fatalf("pod view %+v", v)
	}
	// The pod's netns disappears before DEL (the runtime lost it).
	delNS(t, nsPath)
	inv.cmd = "DEL"
	if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
		t.Fatalf("DEL without netns: exit %d %s", r.code, r.stdout)
	}
	if ps := pods(t, d.Socket); len(ps) != 0 {
		t.Fatalf("registrations left: %+v", ps)
	}
}

// TestStatus: ready while the daemon answers, 11 once it is gone.
func TestStatus(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	conf := netConf(t, "1.1.0", d.Socket, nil)
	inv := invocation{cmd: "STATUS", noNetns: true}
	if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
		t.Fatalf("STATUS up: exit %d %s", r.code, r.stdout)
	}
	d.Stop()
	r := runCNI(t, kedgeBin(), inv, conf)
	if e := r.err(t); r.code == 0 || e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "unavailable") {
		t.Fatalf("STATUS down: exit %d %+v", r.code, e)
	}
	// A config older than 1.1.0 has no STATUS.
	if r := runCNI(t, kedgeBin(), inv, netConf(t, "1.0.0", d.Socket, nil)); r.err(t).Code != types.ErrIncompatibleCNIVersion {
		t.Fatalf("STATUS on 1.0.0: %s", r.stdout)
	}
}

// TestGC: attachments missing from cni.dev/valid-attachments lose their
// registration (and so their address) and veth.
func TestGC(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	conf := netConf(t, "1.1.0", d.Socket, map[string]any{"subnet": "10.63.0.0/24"})
	keep, drop := "cniplugin-keep-"+suffix(), "cniplugin-drop-"+suffix()
	for _, cid := range []string{keep, drop} {
		nsPath := newNS(t)
		if r := runCNI(t, kedgeBin(), invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "eth0"}, conf); r.code != 0 {
			t.Fatalf("ADD %s: %s", cid, r.stdout)
		}
		t.Cleanup(func() {
			runCNI(t, kedgeBin(), invocation{cmd: "DEL", containerID: cid, netns: nsPath, ifname: "eth0"}, conf)
		})
	}
	gc := netConf(t, "1.1.0", d.Socket, map[string]any{"subnet": "10.63.0.0/24",
		"cni.dev/valid-attachments": []map[string]string{{"containerID": keep, "ifname": "eth0"}}})
	if r := runCNI(t, kedgeBin(), invocation{cmd: "GC", noNetns: true}, gc); r.code != 0 {
		t.Fatalf("GC: exit %d %s", r.code, r.stdout)
	}
	ps := pods(t, d.Socket)
	if len(ps) != 1 || ps[0].ContainerID != keep {
		t.Fatalf("after GC: %+v", ps)
	}
	if hostLinkExists(plugin.HostVethName(drop, "eth0")) || !hostLinkExists(plugin.HostVethName(keep, "eth0")) {
		t.Fatal("GC removed the wrong veth")
	}
}

// TestBadInput: the specification's error codes, and nothing leaked.
func TestBadInput(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	down := testdaemon.Start(t, true)
	down.Stop()
	good := netConf(t, "1.1.0", d.Socket, map[string]any{"subnet": "10.64.0.0/24"})
	nsPath := newNS(t)
	cases := []struct {
		name  string
		stdin []byte
		inv   invocation
		code  uint
	}{
		{"garbage stdin", []byte("\x00not json"), invocation{}, types.ErrDecodingFailure},
		{"truncated stdin", good[:len(good)/2], invocation{}, types.ErrDecodingFailure},
		{"unknown cniVersion", netConf(t, "9.9.9", d.Socket, map[string]any{"subnet": "10.64.0.0/24"}), invocation{}, types.ErrIncompatibleCNIVersion},
		{"missing CNI_NETNS", good, invocation{noNetns: true}, types.ErrInvalidEnvironmentVariables},
		{"bad subnet", netConf(t, "1.1.0", d.Socket, map[string]any{"subnet": "10.64.0.0/99"}), invocation{}, types.ErrInvalidNetworkConfig},
		{"bad tier", good, invocation{args: "KEDGE_TIER=god"}, types.ErrInvalidNetworkConfig},
		{"daemon down", netConf(t, "1.1.0", down.Socket, map[string]any{"subnet": "10.64.0.0/24"}), invocation{}, types.ErrTryAgainLater},
		{"no such netns", good, invocation{netns: "/run/netns/cniplugin-absent-" + suffix()}, types.ErrInvalidNetNS},
		{"interface exists (rollback)", good, invocation{ifname: "lo"}, plugin.ErrLink},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cid := "cniplugin-bad-" + suffix()
			inv := c.inv
			inv.cmd, inv.containerID = "ADD", cid
			inv.ifname = first(inv.ifname, "eth0")
			inv.netns = first(inv.netns, nsPath)
			r := runCNI(t, kedgeBin(), inv, c.stdin)
			e := r.err(t)
			if r.code == 0 || e.Code != c.code || e.Msg == "" {
				t.Fatalf("exit %d, error %+v; want code %d", r.code, e, c.code)
			}
			if hostLinkExists(plugin.HostVethName(cid, inv.ifname)) {
				t.Fatal("host veth leaked")
			}
			if ps := pods(t, d.Socket); len(ps) != 0 {
				t.Fatalf("registration leaked: %+v", ps)
			}
		})
	}
	if v := inspectLinks(t, nsPath); !slices.Equal(v, []string{"lo"}) {
		t.Fatalf("pod netns links after failed ADDs: %v", v)
	}
}

// TestConcurrentAdds: 20 ADDs at once get 20 distinct addresses; the
// uniqueness rule turns lost races into retries.
func TestConcurrentAdds(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	conf := netConf(t, "1.1.0", d.Socket, map[string]any{"subnet": "10.65.0.0/24", "timeoutMs": 20000})
	const n = 20
	nss := make([]string, n)
	cids := make([]string, n)
	for i := range n {
		nss[i] = newNS(t)
		cids[i] = fmt.Sprintf("cniplugin-par%d-%s", i, suffix())
	}
	results := make([]cniResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = runCNI(t, kedgeBin(), invocation{cmd: "ADD", containerID: cids[i], netns: nss[i], ifname: "eth0"}, conf)
		})
	}
	wg.Wait()
	seen := map[string]string{}
	for i, r := range results {
		t.Cleanup(func() {
			runCNI(t, kedgeBin(), invocation{cmd: "DEL", containerID: cids[i], netns: nss[i], ifname: "eth0"}, conf)
		})
		if r.code != 0 {
			t.Fatalf("ADD %d: exit %d %s", i, r.code, r.stdout)
		}
		a := parseResult(t, "1.1.0", r.stdout).IPs[0].Address.String()
		if other, dup := seen[a]; dup {
			t.Fatalf("%s given to %s and %s", a, other, cids[i])
		}
		seen[a] = cids[i]
		if v := inspect(t, nss[i], "eth0"); !slices.Equal(v.Addrs, []string{a}) {
			t.Fatalf("pod %d has %v, result said %s", i, v.Addrs, a)
		}
	}
	if ps := pods(t, d.Socket); len(ps) != n {
		t.Fatalf("%d registrations, want %d", len(ps), n)
	}
}

// TestChained: behind another plugin kedge creates no interface, registers
// the previous result's addresses and passes the result through.
func TestChained(t *testing.T) {
	needRoot(t)
	d := testdaemon.Start(t, true)
	nsPath := newNS(t)
	cid := "cniplugin-chain-" + suffix()
	prev := fmt.Sprintf(`{"cniVersion":"1.1.0","interfaces":[{"name":"cali1234"},{"name":"eth0","sandbox":%q}],
		"ips":[{"interface":1,"address":"10.70.0.5/24","gateway":"10.70.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.70.0.1"}]}`, nsPath)
	conf := withPrev(t, netConf(t, "1.1.0", d.Socket, nil), []byte(prev))
	inv := invocation{cmd: "ADD", containerID: cid, netns: nsPath, ifname: "eth0", args: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"}
	r := runCNI(t, kedgeBin(), inv, conf)
	if r.code != 0 {
		t.Fatalf("chained ADD: exit %d %s", r.code, r.stdout)
	}
	if diff := cmp.Diff(parseResult(t, "1.1.0", []byte(prev)), parseResult(t, "1.1.0", r.stdout)); diff != "" {
		t.Fatalf("result not passed through (-prev +got):\n%s", diff)
	}
	if hostLinkExists(plugin.HostVethName(cid, "eth0")) || !slices.Equal(inspectLinks(t, nsPath), []string{"lo"}) {
		t.Fatal("chained ADD created an interface")
	}
	p := podByID(pods(t, d.Socket), cid, "eth0")
	if p == nil || p.HostIfName != "cali1234" || len(p.Addresses) != 1 || p.Addresses[0].String() != "10.70.0.5/24" || p.Name != "b" {
		t.Fatalf("chained registration %+v", p)
	}
	inv.cmd = "DEL"
	if r := runCNI(t, kedgeBin(), inv, conf); r.code != 0 {
		t.Fatalf("chained DEL: %s", r.stdout)
	}
	if p := podByID(pods(t, d.Socket), cid, "eth0"); p != nil {
		t.Fatalf("registration left: %+v", p)
	}
}

// TestVersion: VERSION reports the supported versions.
func TestVersion(t *testing.T) {
	needRoot(t)
	r := runCNI(t, kedgeBin(), invocation{cmd: "VERSION", noNetns: true}, []byte(`{"cniVersion":"1.1.0"}`))
	var v struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(r.stdout, &v); err != nil || !slices.Equal(v.Supported, []string{"0.4.0", "1.0.0", "1.1.0"}) {
		t.Fatalf("VERSION %s: %v", r.stdout, err)
	}
}
