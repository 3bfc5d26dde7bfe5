package host

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/wgctrl"
)

func newNetns(t *testing.T, name string) (string, netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("restore netns: %v", serr) // thread stays locked and dies with the test
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() { h.Close(); netns.DeleteNamed(name) })
	return "/var/run/netns/" + name, h
}

// A userspace device lands in the requested namespace, is found by wgctrl,
// and the shared UAPI directory makes a second device of the same name
// collide even in another namespace. Close removes link and socket.
func TestUserspaceHostInNamespace(t *testing.T) {
	needs.Root(t, "creates namespaces and TUN devices")
	needs.TUN(t)
	id := fmt.Sprintf("%05x", rand.IntN(1<<20))
	nsA, hA := newNetns(t, "wghost-"+id+"-a")
	nsB, _ := newNetns(t, "wghost-"+id+"-b")
	name := "kwh" + id

	h, err := Start(Config{Name: name, Netns: nsA, MTU: 1380})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if h.Mode() != ModeUserspace {
		t.Logf("kernel has WireGuard: mode %s", h.Mode())
	}
	nl, err := netlink.NewHandleAt(hA)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(name)
	if err != nil {
		t.Fatalf("link not in namespace a: %v", err)
	}
	if link.Attrs().MTU != 1380 {
		t.Errorf("mtu = %d, want 1380", link.Attrs().MTU)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("link %s leaked into the test's own namespace", name)
	}
	c, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Device(name); err != nil {
		t.Errorf("wgctrl does not find %s: %v", name, err)
	}

	if h.Mode() == ModeUserspace {
		if h2, err := Start(Config{Name: name, Netns: nsB, Mode: ModeUserspace}); err == nil {
			h2.Close()
			t.Errorf("second device %s in another namespace did not collide on the UAPI socket", name)
		} else if !strings.Contains(err.Error(), "in use") {
			t.Errorf("collision error = %v, want \"in use\"", err)
		}
	}

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	var nf netlink.LinkNotFoundError
	if _, err := nl.LinkByName(name); !errors.As(err, &nf) {
		t.Errorf("link still present after Close: %v", err)
	}
	if _, err := os.Stat("/var/run/wireguard/" + name + ".sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uapi socket still present after Close: %v", err)
	}
}
