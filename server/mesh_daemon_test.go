package server

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// meshNetns creates a throwaway namespace for one daemon.
func meshNetns(t *testing.T) string {
	t.Helper()
	needs.Root(t, "creates a network namespace and a TUN device")
	needs.TUN(t)
	name := fmt.Sprintf("server-mesh-%d", rand.IntN(1<<30))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		needs.Unavailable(t, "cannot create a namespace with ip: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// TestMeshDaemonDeviceOnConfig: a daemon with the mesh available hosts
// no device until /kedge/mesh/config exists, then publishes the public
// key of its key file and the device's state.
func TestMeshDaemonDeviceOnConfig(t *testing.T) {
	ns := meshNetns(t)
	cfg := testConfig(t)
	cfg.Dataplane, cfg.NetNS, cfg.ShmPath, cfg.BPFPinDir = "auto", ns, "off", "off"
	iface := fmt.Sprintf("ksm%d", rand.IntN(1<<20))
	d := startDaemon(t, cfg)
	c := tlsClient(t, d, nil)
	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	meshGet := func(p string) *gpb.TypedValue {
		resp, err := c.Get(ctxAs(t, "master", masterPW), &gpb.GetRequest{Path: []*gpb.Path{gp(t, p)}, Encoding: gpb.Encoding_PROTO})
		if err != nil || len(resp.GetNotification()) == 0 || len(resp.GetNotification()[0].GetUpdate()) == 0 {
			return nil
		}
		return resp.GetNotification()[0].GetUpdate()[0].GetVal()
	}
	_, pub, err := wgmesh.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	// From the start, before any mesh config: the node's key, the
	// interface and port a configuration would use, and why there is no
	// device (issue 11 item 14).
	if got := meshLeaves(t, c, "/kedge/mesh/state"); !maps.Equal(got, map[string]string{
		"public-key": pub.String(), "interface": "kedge0", "listen-port": "51820", "status": "unconfigured"}) {
		t.Errorf("mesh state on a fresh node: %v", got)
	}
	waitUntil(t, "effective level", func() bool { return effective(t, c) == 5 })
	onlyLo := func(when string) {
		if out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput(); err != nil ||
			strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("links in the daemon's namespace %s (want only lo): %v\n%s", when, err, out)
		}
	}
	onlyLo("before any mesh config")
	_, err = c.Set(ctxAs(t, "master", masterPW), &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/mesh/config"),
		Val: jsonIETF(fmt.Sprintf(`{"interface":%q,"listen-port":51833,"addresses":["10.98.0.1/24"]}`, iface))}}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "mesh up in state", func() bool {
		v := meshGet("/kedge/mesh/state/status")
		return v != nil && v.GetStringVal() == "up"
	})
	if v := meshGet("/kedge/mesh/state/public-key"); v.GetStringVal() != pub.String() {
		t.Errorf("state public key %q, want the key file's %s", v.GetStringVal(), pub)
	}
	dev, err := wg.Device(iface)
	if err != nil {
		t.Fatalf("device %s not hosted: %v", iface, err)
	}
	if dev.ListenPort != 51833 || wgmesh.Key(dev.PublicKey) != pub {
		t.Errorf("device port %d key %s, want 51833 and %s", dev.ListenPort, dev.PublicKey, pub)
	}

	// Deleting the mesh takes the device away; the state says the node
	// is unconfigured again.
	if _, err := c.Set(ctxAs(t, "master", masterPW), &gpb.SetRequest{Delete: []*gpb.Path{gp(t, "/kedge/mesh")}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "device gone", func() bool { _, err := wg.Device(iface); return err != nil })
	waitUntil(t, "mesh state unconfigured", func() bool {
		v := meshGet("/kedge/mesh/state/status")
		return v != nil && v.GetStringVal() == "unconfigured"
	})
	if got := meshLeaves(t, c, "/kedge/mesh/state"); !maps.Equal(got, map[string]string{
		"public-key": pub.String(), "interface": "kedge0", "listen-port": "51820", "status": "unconfigured"}) {
		t.Errorf("mesh state after the mesh was deleted: %v", got)
	}
	onlyLo("after the mesh was deleted")
}

// meshLeaves Gets a mesh subtree and returns its leaves by name (the last
// path element), as text.
func meshLeaves(t *testing.T, c gpb.GNMIClient, path string) map[string]string {
	t.Helper()
	resp, err := c.Get(ctxAs(t, "master", masterPW), &gpb.GetRequest{Path: []*gpb.Path{gp(t, path)}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatalf("Get %s: %v", path, err)
	}
	out := map[string]string{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			elems := append(append([]*gpb.PathElem{}, n.GetPrefix().GetElem()...), u.GetPath().GetElem()...)
			v := u.GetVal()
			text := v.GetStringVal()
			if _, ok := v.GetValue().(*gpb.TypedValue_UintVal); ok {
				text = fmt.Sprint(v.GetUintVal())
			}
			out[elems[len(elems)-1].GetName()] = text
		}
	}
	return out
}

// TestMeshStateOnFreshDaemon (issue 11 item 14): a node whose mesh cannot
// run (here: the dataplane is off) publishes its own mesh state from the
// start: its key (the key file's), the interface and listen port it
// would use, following their config, status unavailable and why.
func TestMeshStateOnFreshDaemon(t *testing.T) {
	cfg := testConfig(t)
	d := startDaemon(t, cfg)
	c := tlsClient(t, d, nil)
	_, pub, err := wgmesh.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"public-key": pub.String(), "interface": "kedge0", "listen-port": "51820",
		"status": "unavailable", "error": "the dataplane is off (--dataplane off)"}
	if got := meshLeaves(t, c, "/kedge/mesh"); !maps.Equal(got, want) {
		t.Errorf("Get /kedge/mesh on a fresh daemon: %v, want %v", got, want)
	}
	if _, err := c.Set(ctxAs(t, "master", masterPW), &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/mesh/config"),
		Val: jsonIETF(`{"interface":"wg7","listen-port":51999}`)}}}); err != nil {
		t.Fatal(err)
	}
	want["interface"], want["listen-port"] = "wg7", "51999"
	waitUntil(t, "mesh state following its config", func() bool {
		got := meshLeaves(t, c, "/kedge/mesh/state")
		return maps.Equal(got, want)
	})
}

// TestMeshStateWithoutKey: a key file the daemon refuses (group and
// others may read it) leaves the node without a key; its mesh state says
// so instead of being absent.
func TestMeshStateWithoutKey(t *testing.T) {
	cfg := testConfig(t)
	if _, _, err := wgmesh.LoadOrCreateKey(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(cfg.DataDir, wgmesh.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	got := meshLeaves(t, tlsClient(t, d, nil), "/kedge/mesh/state")
	if got["status"] != "unavailable" || got["public-key"] != "" || !strings.Contains(got["error"], wgmesh.KeyFile) ||
		got["interface"] != "kedge0" || got["listen-port"] != "51820" {
		t.Errorf("mesh state with a refused key file: %v", got)
	}
}
