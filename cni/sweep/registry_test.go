package sweep_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/cni/internal/testdaemon"
	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/cni/sweep"
)

// TestSweepRegistry runs the sweeper with its default probes over a real
// registry client: a pod whose netns path and host veth are both gone is
// removed, one whose netns path exists is kept.
func TestSweepRegistry(t *testing.T) {
	d := testdaemon.Start(t, true)
	c, err := registry.Dial(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alive := filepath.Join(t.TempDir(), "netns-alive")
	if err := os.WriteFile(alive, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []registry.Pod{
		{ContainerID: "alive", IfName: "eth0", Netns: alive, HostIfName: "kdsweepnone1", Addresses: []netip.Prefix{netip.MustParsePrefix("10.75.0.2/32")}},
		{ContainerID: "leaked", IfName: "eth0", Netns: alive + "-gone", HostIfName: "kdsweepnone2", Addresses: []netip.Prefix{netip.MustParsePrefix("10.75.0.3/32")}},
	} {
		if err := c.Register(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	s := &sweep.Sweeper{Registry: c}
	removed, err := s.Sweep(ctx)
	if err != nil || len(removed) != 1 || removed[0] != "leaked/eth0" {
		t.Fatalf("sweep: removed %v, err %v", removed, err)
	}
	pods, err := c.Pods(ctx)
	if err != nil || len(pods) != 1 || pods[0].ContainerID != "alive" {
		t.Fatalf("after sweep: %+v %v", pods, err)
	}
}
