package server

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
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
	waitUntil(t, "effective level", func() bool { return effective(t, c) == 5 })
	if v := meshGet("/kedge/mesh/state/public-key"); v != nil {
		t.Errorf("mesh state %v before any mesh config", v)
	}
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
	_, pub, err := wgmesh.LoadOrCreateKey(cfg.DataDir)
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

	// Deleting the mesh takes the device and the state away.
	if _, err := c.Set(ctxAs(t, "master", masterPW), &gpb.SetRequest{Delete: []*gpb.Path{gp(t, "/kedge/mesh")}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "device gone", func() bool { _, err := wg.Device(iface); return err != nil })
	waitUntil(t, "mesh state gone", func() bool { return meshGet("/kedge/mesh/state/status") == nil })
	onlyLo("after the mesh was deleted")
}
