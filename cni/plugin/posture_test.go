package plugin_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestPostureChangesPodRoutes: pods added through the plugin get host
// routes from the daemon's route backend, and posture 5→3→1→5 changes
// them as the accords say without any further plugin call: at 3 the
// underlay pod below master loses its route and the overlay pod keeps
// it; at 1 both are gone; at 5 both are back.
func TestPostureChangesPodRoutes(t *testing.T) {
	needRoot(t)
	hostNS := newNS(t) // the node's network namespace: host veths and routes
	hostName := filepath.Base(hostNS)
	sock := startRealDaemon(t, "--netns", hostName)
	setPools(t, sock, `["10.69.0.0/24"]`)

	// The plugin runs in the node's namespace, as the runtime would run it.
	add := func(cid, mode string) netip.Addr {
		t.Helper()
		podNS := newNS(t)
		inv := invocation{cmd: "ADD", containerID: cid, netns: podNS, ifname: "eth0", args: "KEDGE_TIER=operator;KEDGE_MODE=" + mode}
		r := runCNIIn(t, hostName, kedgeBin(), inv, netConf(t, "1.1.0", sock, nil))
		if r.code != 0 {
			t.Fatalf("ADD %s: exit %d %s %s", cid, r.code, r.stdout, r.stderr)
		}
		v := inspect(t, podNS, "eth0")
		if len(v.Addrs) != 1 {
			t.Fatalf("pod %s addresses %v", cid, v.Addrs)
		}
		return netip.MustParsePrefix(v.Addrs[0]).Addr()
	}
	under := add("cniposture-u-"+suffix(), "underlay")
	over := add("cniposture-o-"+suffix(), "overlay")

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := gpb.NewGNMIClient(conn)
	setLevel := func(level uint64) {
		t.Helper()
		elems := []*gpb.PathElem{{Name: "kedge"}, {Name: "posture"}, {Name: "config"}, {Name: "level"}}
		_, err := client.Set(context.Background(), &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: elems},
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: level}}}}})
		if err != nil {
			t.Fatalf("set level %d: %v", level, err)
		}
	}
	for _, step := range []struct {
		level       uint64
		under, over bool // whether each pod's host route is in the kernel
	}{
		{5, true, true},
		{3, false, true},
		{1, false, false},
		{5, true, true},
	} {
		setLevel(step.level)
		want := fmt.Sprintf("underlay pod route %v, overlay pod route %v", step.under, step.over)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := hostRoutes(t, hostNS)
			if got[under] == step.under && got[over] == step.over {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("level %d: want %s, kernel has %v", step.level, want, got)
			}
			time.Sleep(20 * time.Millisecond) // polling the kernel, with a deadline
		}
	}
}

// runCNIIn runs the plugin inside a named network namespace.
func runCNIIn(t testing.TB, nsName, bin string, inv invocation, stdin []byte) cniResult {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "in-"+nsName)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", nsName, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return runCNI(t, wrapper, inv, stdin)
}

// hostRoutes returns the /32 host routes Kedge (protocol 107) holds in the
// namespace, by destination address.
func hostRoutes(t testing.TB, nsPath string) map[netip.Addr]bool {
	t.Helper()
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	routes, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: 107}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]bool{}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			out[p.Unmap()] = true
		}
	}
	return out
}
