package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// TestRestartUnderExternalLevelNeverLoosens: a program (the shell's eBPF
// side, the governance daemon) holds the node at level 1 through the
// pinned posture_level map, which survives daemon restarts. A daemon
// starting on a tree configured at 5 must not program the routes level 1
// withholds, not even for a moment before the engine has read the map.
func TestRestartUnderExternalLevelNeverLoosens(t *testing.T) {
	needRoot(t)
	n := newNS(t, "extlevel")
	dir := t.TempDir()
	pins := fmt.Sprintf("/sys/fs/bpf/kedge-tests-extlevel-%d-%d", os.Getpid(), rand.IntN(1<<30))
	t.Cleanup(func() { os.RemoveAll(pins) })

	// Configure the routes with the dataplane off: nothing in the kernel yet.
	off := daemonCfg(t, dir, n.name)
	off.Dataplane = "off"
	c, stop := startKedge(t, off)
	under := rt{prefix: "10.41.0.0/24", table: 254, dev: "rtA", class: "underlay"}
	setRoutes(t, c, under)
	stop()

	// Another program writes level 1 into the pinned map.
	b, err := pinned.Open(pinned.WithPinDir(pins))
	if err != nil {
		needs.Unavailable(t, "BPF map unavailable on this kernel: %v", err)
	}
	if err := b.Set(context.Background(), bpfmap.Config{Level: 1}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	m := n.monitor(t)
	on := daemonCfg(t, dir, n.name)
	on.BPFPinDir = pins
	c2, _ := startKedge(t, on)
	waitState(t, c2, under.path(), "withheld", "posture level 1")
	// Give a late reconciler time to misbehave, then check the kernel
	// never saw the route.
	deadline := time.After(500 * time.Millisecond)
	for {
		select {
		case u := <-m.ch:
			if u.Type == unix.RTM_NEWROUTE && u.Dst != nil && u.Dst.String() == "10.41.0.0/24" {
				t.Fatalf("the route withheld at level 1 was programmed during start: %v", u)
			}
		case <-deadline:
			if got := n.kedgeRoutes(t); len(got) != 0 {
				t.Fatalf("routes in the kernel at level 1: %v", got)
			}
			return
		}
	}
}
