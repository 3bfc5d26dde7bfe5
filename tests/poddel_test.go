package tests

import (
	"fmt"
	"maps"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/routes"
)

// routeApplyStats returns the daemon's route apply counts.
func routeApplyStats(t testing.TB, d *server.Daemon) routes.ApplyStats {
	t.Helper()
	st, ok := d.RouteApplyStats()
	if !ok {
		t.Fatal("the routes component does not run")
	}
	return st
}

// podDel deletes a pod as kedge-cni's DEL does, the host end of its veth
// first (the kernel drops the pod's route with it), then its entry, and
// returns how long that took until the route reconciler had applied the
// delete, and the part of it from the entry's delete on.
func podDel(t testing.TB, c gpb.GNMIClient, d *server.Daemon, ns *rtNS, id, host, addr string) (all, entry time.Duration) {
	t.Helper()
	t0 := time.Now()
	ipCmd(t, "-n", ns.name, "link", "del", host)
	if ns.present(addr) {
		t.Fatalf("pod %s: its route outlived its veth", id)
	}
	before := routeApplyStats(t, d)
	p := path(t, "/kedge/pods/pod[container-id="+id+"][ifname=eth0]")
	t1 := time.Now()
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Delete: []*gpb.Path{p}}); err != nil {
		t.Fatalf("delete pod %s: %v", id, err)
	}
	// Applied: patched in or Set whole after the delete's commit.
	for {
		st := routeApplyStats(t, d)
		if st.Patches+st.WholeSets > before.Patches+before.WholeSets {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("pod %s: the delete was not applied in 30 s", id)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return time.Since(t0), time.Since(t1)
}

// TestPodDelIsPatched: on a node holding 10,000 routes, pods' DELs (the
// veth first, then the pod entry) are patched in: no whole Set, the
// pods' routes gone from the kernel and their entries from the tree,
// the node's routes left as they were. Before, the veth going took the
// backend's route cache with it, and the Patch deleting the pod's route
// was refused: each DEL Set the whole Config ("backend" fallbacks).
func TestPodDelIsPatched(t *testing.T) {
	needRoot(t)
	const base, pods = 10_000, 5
	ns := newNS(t, "poddel")
	c, _, d := startKedgeD(t, daemonCfg(t, t.TempDir(), ns.name))
	all := hostRoutes(base, "", "")
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/routes"), Val: jsonVal(routesJSON(all))}}}); err != nil {
		t.Fatalf("set: %v", err)
	}
	eventually(t, "the last route's state", func() bool {
		s, _ := entryState(t, c, all[base-1].path())
		return s == "installed"
	})
	m := ns.monitor(t)
	addrOf := func(i int) string { return fmt.Sprintf("10.201.0.%d", i+1) }
	for i := range pods {
		id, host := fmt.Sprintf("del-%d", i), fmt.Sprintf("kd%d", i)
		ipCmd(t, "-n", ns.name, "link", "add", host, "type", "veth", "peer", "name", fmt.Sprintf("ke%d", i))
		ipCmd(t, "-n", ns.name, "link", "set", host, "up")
		js := fmt.Sprintf(`{"container-id":%q,"ifname":"eth0","netns":"/run/netns/%s","addresses":["%s/32"],"host-ifname":%q}`, id, ns.name, addrOf(i), host)
		req := &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/pods/pod[container-id="+id+"][ifname=eth0]/config"), Val: jsonVal([]byte(js))}}}
		if _, err := c.Set(rpcCtx(t), req); err != nil {
			t.Fatalf("set pod: %v", err)
		}
		m.until(t, func(u netlink.RouteUpdate) bool {
			return u.Type == unix.RTM_NEWROUTE && u.Dst != nil && u.Dst.IP.String() == addrOf(i)
		})
	}
	before := routeApplyStats(t, d)
	for i := range pods {
		podDel(t, c, d, ns, fmt.Sprintf("del-%d", i), fmt.Sprintf("kd%d", i), addrOf(i))
	}
	after := routeApplyStats(t, d)
	if whole := after.WholeSets - before.WholeSets; whole != 0 || !maps.Equal(after.Fallbacks, before.Fallbacks) {
		t.Errorf("%d pod DELs made %d whole Sets (fallbacks %v, before %v), want none", pods, whole, after.Fallbacks, before.Fallbacks)
	}
	if p := after.Patches - before.Patches; p < pods {
		t.Errorf("%d pod DELs patched %d times", pods, p)
	}
	for i := range pods {
		if ns.present(addrOf(i)) {
			t.Errorf("pod %d's route is in the kernel", i)
		}
		if s, _ := entryState(t, c, fmt.Sprintf("/kedge/pods/pod[container-id=del-%d][ifname=eth0]", i)); s != "" {
			t.Errorf("pod %d's state %q after its DEL", i, s)
		}
	}
	if !ns.present(hostOf(all[0])) || !ns.present(hostOf(all[base-1])) {
		t.Error("the node's routes went with the pods")
	}
}
