package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// kedgeProto is Kedge's rtnetlink route protocol (route.DefaultProtocol).
const kedgeProto = 107

// rtNS is a throwaway network namespace with one veth pair, rtA (10.77.0.1/24,
// fd77::1/64) and rtB, both up, for routes to go out of.
type rtNS struct {
	name string
	nsh  netns.NsHandle
	h    *netlink.Handle
}

func needRoot(t testing.TB) {
	t.Helper()
	needs.Root(t, "creates network namespaces and kernel routes")
	needs.Tool(t, "ip", "creates network namespaces")
}

func ipCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS makes a namespace named tests-routes-<tag>-<random>, removed at cleanup.
func newNS(t testing.TB, tag string) *rtNS {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("tests-routes-%s-%d", tag, rand.IntN(1<<30))
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "add", "rtA", "type", "veth", "peer", "name", "rtB")
	ipCmd(t, "-n", name, "addr", "add", "10.77.0.1/24", "dev", "rtA")
	ipCmd(t, "-n", name, "addr", "add", "fd77::1/64", "dev", "rtA", "nodad")
	for _, l := range []string{"lo", "rtA", "rtB"} {
		ipCmd(t, "-n", name, "link", "set", l, "up")
	}
	nsh, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &rtNS{name: name, nsh: nsh, h: h}
}

// kedgeRoutes lists the namespace's protocol-107 routes, all tables, as
// "dst table N dev X [via G]" lines, sorted.
func (n *rtNS) kedgeRoutes(t testing.TB) []string {
	t.Helper()
	rs, err := n.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: kedgeProto},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	out := []string{}
	for _, r := range rs {
		s := fmt.Sprintf("%s table %d", r.Dst, r.Table)
		if l, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// countKedge counts protocol-107 routes; cheap enough to poll at 100,000.
func (n *rtNS) countKedge(t testing.TB) int {
	t.Helper()
	c := 0
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := n.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: kedgeProto},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			t.Fatalf("list routes: %v", err)
		}
		c += len(rs)
	}
	return c
}

// ipShow is `ip -n NS route show table all proto 107`, for failure output
// and for checking with the tool an operator would use.
func (n *rtNS) ipShow(t testing.TB) string {
	return ipCmd(t, "-n", n.name, "route", "show", "table", "all", "proto", "107")
}

// daemonCfg is a config for a daemon with only the route backend acting in ns.
func daemonCfg(t testing.TB, dir, ns string) config.Config {
	t.Helper()
	c := config.Defaults()
	c.DataDir = dir
	c.Listen = ""
	c.Socket = filepath.Join(dir, "kedge.sock")
	c.NodeName = "tests-routes"
	c.NetNS = ns
	c.ShmPath, c.BPFPinDir = "off", "off"
	c.MetricsListen = "off"
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return c
}

// quietLog discards the daemon's log unless KEDGE_TEST_LOG names a level
// (debug shows the route reconciler's timings).
func quietLog(t testing.TB) *slog.Logger {
	if lv := os.Getenv("KEDGE_TEST_LOG"); lv != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(lv)); err != nil {
			t.Fatalf("KEDGE_TEST_LOG: %v", err)
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startKedge starts an in-process daemon; stop shuts it down (also at cleanup).
func startKedge(t testing.TB, cfg config.Config) (c gpb.GNMIClient, stop func()) {
	t.Helper()
	c, stop, _ = startKedgeD(t, cfg)
	return c, stop
}

// startKedgeD is startKedge also returning the daemon, for its counters.
func startKedgeD(t testing.TB, cfg config.Config) (c gpb.GNMIClient, stop func(), d *server.Daemon) {
	t.Helper()
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	conn, err := grpc.NewClient("unix://"+d.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			conn.Close()
			d.Shutdown(5 * time.Second)
		}
	}
	t.Cleanup(stop)
	return gpb.NewGNMIClient(conn), stop, d
}

func rpcCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func path(t testing.TB, s string) *gpb.Path {
	t.Helper()
	e, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return &gpb.Path{Elem: e}
}

// rt is a route of the tree as a test writes it.
type rt struct {
	prefix  string
	table   int
	nh, dev string
	metric  int
	class   string
	tier    string
}

func (r rt) json() string {
	s := fmt.Sprintf(`{"prefix":%q,"table":%d`, r.prefix, r.table)
	if r.nh != "" {
		s += fmt.Sprintf(`,"next-hop":%q`, r.nh)
	}
	if r.dev != "" {
		s += fmt.Sprintf(`,"device":%q`, r.dev)
	}
	if r.metric != 0 {
		s += fmt.Sprintf(`,"metric":%d`, r.metric)
	}
	if r.class != "" {
		s += fmt.Sprintf(`,"class":%q`, r.class)
	}
	if r.tier != "" {
		s += fmt.Sprintf(`,"tier":%q`, r.tier)
	}
	return s + "}"
}

func (r rt) path() string {
	return fmt.Sprintf("/kedge/routes/route[prefix=%s][table=%d]", r.prefix, r.table)
}

// routesJSON is the /kedge/routes container holding rs.
func routesJSON(rs []rt) []byte {
	var b strings.Builder
	b.WriteString(`{"route":[`)
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"prefix":%q,"table":%d,"config":%s}`, r.prefix, r.table, r.json())
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func jsonVal(b []byte) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}
}

// setRoutes merges rs into /kedge/routes with one gNMI Set.
func setRoutes(t testing.TB, c gpb.GNMIClient, rs ...rt) {
	t.Helper()
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/routes"), Val: jsonVal(routesJSON(rs))}}}); err != nil {
		t.Fatalf("set routes: %v", err)
	}
}

func deleteRoutes(t testing.TB, c gpb.GNMIClient, rs ...rt) {
	t.Helper()
	req := &gpb.SetRequest{}
	for _, r := range rs {
		req.Delete = append(req.Delete, path(t, r.path()))
	}
	if _, err := c.Set(rpcCtx(t), req); err != nil {
		t.Fatalf("delete routes: %v", err)
	}
}

// leaves gets p and returns its leaves by full path.
func leaves(t testing.TB, c gpb.GNMIClient, p string) map[string]string {
	t.Helper()
	resp, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Encoding: gpb.Encoding_PROTO})
	out := map[string]string{}
	if err != nil {
		return out
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			v := u.GetVal()
			s := v.GetStringVal()
			if s == "" {
				s = fmt.Sprint(v.GetUintVal())
			}
			out[tree.RenderPath(append(n.GetPrefix().GetElem(), u.GetPath().GetElem()...))] = s
		}
	}
	return out
}

// entryState returns status and reason of a route or pod entry path.
func entryState(t testing.TB, c gpb.GNMIClient, entry string) (string, string) {
	t.Helper()
	l := leaves(t, c, entry+"/state")
	var status, reason string
	for k, v := range l {
		switch {
		case strings.HasSuffix(k, "/state/status"):
			status = v
		case strings.HasSuffix(k, "/state/reason"):
			reason = v
		}
	}
	return status, reason
}

func setLevel(t testing.TB, c gpb.GNMIClient, level uint64) {
	t.Helper()
	_, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/posture/config/level"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: level}}}}})
	if err != nil {
		t.Fatalf("set level %d: %v", level, err)
	}
}

// eventually polls cond until it holds or 30 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRoutes waits until the namespace's Kedge routes are exactly want.
func waitRoutes(t testing.TB, n *rtNS, what string, want []string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := n.kedgeRoutes(t)
		if cmp.Equal(want, got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: kernel routes (-want +got):\n%s\nip route:\n%s", what, cmp.Diff(want, got), n.ipShow(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t testing.TB, c gpb.GNMIClient, entry, status, reasonPart string) {
	t.Helper()
	var s, r string
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, r = entryState(t, c, entry)
		if s == status && strings.Contains(r, reasonPart) && (reasonPart != "" || r == "") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %q (reason %q), want %q with reason containing %q", entry, s, r, status, reasonPart)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRoutesThroughGNMI programs, changes and removes routes with gNMI Set
// on a daemon acting in a namespace, checked through netlink, ip and state.
func TestRoutesThroughGNMI(t *testing.T) {
	n := newNS(t, "gnmi")
	c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
	r1 := rt{prefix: "10.10.0.0/24", table: 254, nh: "10.77.0.2"}
	r2 := rt{prefix: "10.20.0.0/16", table: 100, dev: "rtA"}
	r3 := rt{prefix: "fd10::/64", table: 254, nh: "fd77::2", dev: "rtA"}
	setRoutes(t, c, r1, r2, r3)
	waitRoutes(t, n, "three routes", []string{
		"10.10.0.0/24 table 254 dev rtA via 10.77.0.2", "10.20.0.0/16 table 100 dev rtA", "fd10::/64 table 254 dev rtA via fd77::2"})
	for _, r := range []rt{r1, r2, r3} {
		waitState(t, c, r.path(), "installed", "")
	}
	if out := n.ipShow(t); !strings.Contains(out, "10.20.0.0/16 dev rtA table 100") {
		t.Errorf("ip route show does not list the table-100 route:\n%s", out)
	}

	// Change r1's next hop and r2's device; remove r3.
	r1.nh = "10.77.0.3"
	r2.dev = "rtB"
	setRoutes(t, c, r1, r2)
	deleteRoutes(t, c, r3)
	waitRoutes(t, n, "changed routes", []string{"10.10.0.0/24 table 254 dev rtA via 10.77.0.3", "10.20.0.0/16 table 100 dev rtB"})

	deleteRoutes(t, c, r1, r2)
	waitRoutes(t, n, "no routes", []string{})
}

// TestRoutesRepairedAfterOutsideChange: what someone else does to
// Kedge's routes is undone without any change to the tree: a deleted
// route comes back, and so do the routes a link flap took away, whose
// state says failed while the link is down.
func TestRoutesRepairedAfterOutsideChange(t *testing.T) {
	n := newNS(t, "repair")
	c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
	r1 := rt{prefix: "10.11.0.0/24", table: 254, nh: "10.77.0.2"}
	r2 := rt{prefix: "10.12.0.0/16", table: 100, dev: "rtA"}
	setRoutes(t, c, r1, r2)
	want := []string{"10.11.0.0/24 table 254 dev rtA via 10.77.0.2", "10.12.0.0/16 table 100 dev rtA"}
	waitRoutes(t, n, "both routes", want)

	ipCmd(t, "-n", n.name, "route", "del", "10.11.0.0/24", "proto", "107")
	waitRoutes(t, n, "the deleted route back", want)

	ipCmd(t, "-n", n.name, "link", "set", "rtA", "down")
	waitRoutes(t, n, "no routes while the link is down", []string{})
	// The kernel dropped them: once no Patch deleted them within the
	// backend's grace (they were not a pod's DEL), their state says so.
	for _, r := range []rt{r1, r2} {
		eventually(t, r.path()+" failed while its link is down", func() bool {
			s, _ := entryState(t, c, r.path())
			return s == "failed"
		})
	}
	ipCmd(t, "-n", n.name, "link", "set", "rtA", "up")
	waitRoutes(t, n, "both routes after the link came back", want)
	for _, r := range []rt{r1, r2} {
		waitState(t, c, r.path(), "installed", "")
	}
}

// monitor records route notifications for Kedge's protocol in the
// namespace until the test ends.
type monitor struct {
	ch   chan netlink.RouteUpdate
	done chan struct{}
}

func (n *rtNS) monitor(t testing.TB) *monitor {
	t.Helper()
	m := &monitor{ch: make(chan netlink.RouteUpdate, 4096), done: make(chan struct{})}
	nsh := n.nsh
	if err := netlink.RouteSubscribeWithOptions(m.ch, m.done, netlink.RouteSubscribeOptions{Namespace: &nsh,
		ErrorCallback: func(err error) {
			select {
			case <-m.done: // the subscription's socket closing at cleanup
			default:
				t.Errorf("route monitor: %v", err)
			}
		}}); err != nil {
		t.Fatalf("subscribe to routes: %v", err)
	}
	t.Cleanup(func() { close(m.done) })
	return m
}

// until reads events until one matches stop (or 30 s pass) and returns
// every event read, as "add|del dst", stop's included.
func (m *monitor) until(t testing.TB, stop func(netlink.RouteUpdate) bool) []string {
	t.Helper()
	var seen []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case u := <-m.ch:
			if u.Protocol != kedgeProto {
				// The kernel's own routes (IPv6 link-local and local
				// routes appearing as addresses finish DAD) are not ours.
				continue
			}
			op := "add"
			if u.Type == unix.RTM_DELROUTE {
				op = "del"
			}
			seen = append(seen, op+" "+u.Dst.String())
			if stop(u) {
				return seen
			}
		case <-timeout:
			t.Fatalf("route monitor: no awaited event; saw %v", seen)
		}
	}
}

// TestRoutesRestartAdoption: routes survive a daemon restart with no
// kernel message about them, and a route deleted from the tree while the
// daemon was down is removed after the restart.
func TestRoutesRestartAdoption(t *testing.T) {
	n := newNS(t, "restart")
	dir := t.TempDir()
	c, stop := startKedge(t, daemonCfg(t, dir, n.name))
	keep1 := rt{prefix: "10.40.1.0/24", table: 254, nh: "10.77.0.2"}
	keep2 := rt{prefix: "fd40::/64", table: 200, dev: "rtA"}
	gone := rt{prefix: "10.40.9.0/24", table: 254, dev: "rtA"}
	setRoutes(t, c, keep1, keep2, gone)
	want := []string{"10.40.1.0/24 table 254 dev rtA via 10.77.0.2", "fd40::/64 table 200 dev rtA", "10.40.9.0/24 table 254 dev rtA"}
	waitRoutes(t, n, "routes before restart", slices.Clone(want))
	stop()
	waitRoutes(t, n, "routes kept after shutdown", slices.Clone(want))

	// While the route backend is down, delete one route from the tree
	// (the same data dir, dataplane off).
	off := daemonCfg(t, dir, n.name)
	off.Dataplane = "off"
	c2, stop2 := startKedge(t, off)
	deleteRoutes(t, c2, gone)
	stop2()
	waitRoutes(t, n, "nothing changed while the dataplane was off", slices.Clone(want))

	m := n.monitor(t)
	c3, _ := startKedge(t, daemonCfg(t, dir, n.name))
	events := m.until(t, func(u netlink.RouteUpdate) bool {
		return u.Type == unix.RTM_DELROUTE && u.Dst != nil && u.Dst.String() == "10.40.9.0/24"
	})
	waitRoutes(t, n, "stale route removed after restart", want[:2])
	waitState(t, c3, keep1.path(), "installed", "")
	waitState(t, c3, keep2.path(), "installed", "")
	// The deletion of the stale route comes after every add of the first
	// reconcile; the kept routes must not appear at all.
	if d := cmp.Diff([]string{"del 10.40.9.0/24"}, events); d != "" {
		t.Errorf("route messages during restart (-want +got):\n%s", d)
	}
}

// TestRoutesForeignUntouched: routes of other protocols, including one
// holding the key of a Kedge route, survive every Set and delete.
func TestRoutesForeignUntouched(t *testing.T) {
	n := newNS(t, "foreign")
	ipCmd(t, "-n", n.name, "route", "add", "10.30.0.0/24", "dev", "rtA", "proto", "static")
	ipCmd(t, "-n", n.name, "route", "add", "10.31.0.0/24", "via", "10.77.0.9", "proto", "boot")
	ipCmd(t, "-n", n.name, "route", "add", "10.32.0.0/24", "dev", "rtB", "table", "300", "proto", "static")
	foreign := func() string {
		return ipCmd(t, "-n", n.name, "route", "show", "table", "all", "proto", "static") +
			ipCmd(t, "-n", n.name, "route", "show", "table", "all", "proto", "boot")
	}
	before := foreign()
	c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
	mine := rt{prefix: "10.33.0.0/24", table: 254, dev: "rtA"}
	taken := rt{prefix: "10.31.0.0/24", table: 254, dev: "rtA"} // the boot route's key
	setRoutes(t, c, mine, taken)
	waitRoutes(t, n, "only Kedge's own route", []string{"10.33.0.0/24 table 254 dev rtA"})
	waitState(t, c, taken.path(), "failed", "another protocol")
	waitState(t, c, mine.path(), "installed", "")
	deleteRoutes(t, c, mine, taken)
	waitRoutes(t, n, "no Kedge route", []string{})
	if after := foreign(); after != before {
		t.Errorf("foreign routes changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestRoutesBadInput: a route with an unreachable gateway, one with an
// unknown device and two mapping to the same kernel key each get a clear
// error in state; the good route is applied.
func TestRoutesBadInput(t *testing.T) {
	n := newNS(t, "bad")
	c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
	good := rt{prefix: "10.73.0.0/24", table: 254, dev: "rtA"}
	unreach := rt{prefix: "10.70.0.0/24", table: 254, nh: "10.99.0.1"}
	nodev := rt{prefix: "10.71.0.0/24", table: 254, dev: "nosuch0"}
	// Table 0 is the main table (254) in the kernel: the same key.
	dupA := rt{prefix: "10.72.0.0/24", table: 0, dev: "rtA"}
	dupB := rt{prefix: "10.72.0.0/24", table: 254, dev: "rtB"}
	setRoutes(t, c, good, unreach, nodev, dupA, dupB)
	waitState(t, c, good.path(), "installed", "")
	waitState(t, c, unreach.path(), "failed", "gateway outside any connected network")
	waitState(t, c, nodev.path(), "failed", `unknown device "nosuch0"`)
	waitState(t, c, dupA.path(), "failed", "duplicate key")
	waitState(t, c, dupB.path(), "failed", "duplicate key")
	waitRoutes(t, n, "only the good route", []string{"10.73.0.0/24 table 254 dev rtA"})

	// Fixing the duplicate installs the survivor.
	deleteRoutes(t, c, dupA)
	waitState(t, c, dupB.path(), "installed", "")
	waitRoutes(t, n, "good route and the fixed one", []string{"10.73.0.0/24 table 254 dev rtA", "10.72.0.0/24 table 254 dev rtB"})
}

// pod is a /kedge/pods entry as a test writes it.
type pod struct {
	id, addr, mode, tier string
}

func podsJSON(ps []pod) []byte {
	var b strings.Builder
	b.WriteString(`{"pod":[`)
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"container-id":%q,"ifname":"eth0","config":{"container-id":%q,"ifname":"eth0",`+
			`"addresses":[%q],"host-ifname":"rtB","allowed-mode":%q,"tier":%q}}`, p.id, p.id, p.addr, p.mode, p.tier)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// TestRoutesPostureLevels walks 5→3→2→1→5 and checks that the kernel holds
// exactly the accord's routes at each level (the seed's CNI table), with
// the others withheld in state with a reason.
func TestRoutesPostureLevels(t *testing.T) {
	n := newNS(t, "posture")
	c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
	eps := `{"endpoint":[` +
		`{"name":"quartermaster","config":{"name":"quartermaster","kind":"management","service":"quartermaster","prefix":"10.50.0.0/24"}},` +
		`{"name":"prometheus","config":{"name":"prometheus","kind":"monitoring","service":"prometheus","prefix":"10.51.0.10/32"}},` +
		`{"name":"ir","config":{"name":"ir","kind":"incident","prefix":"10.52.0.0/24"}}]}`
	routes := map[string]rt{
		"A": {prefix: "10.60.0.0/24", table: 254, dev: "rtA", class: "management"},
		"B": {prefix: "10.61.0.0/24", table: 254, dev: "rtA", class: "incident"},
		"C": {prefix: "10.62.0.0/24", table: 254, dev: "rtA", class: "monitoring"},
		"D": {prefix: "10.63.0.0/24", table: 254, dev: "rtA", class: "overlay"},
		"E": {prefix: "10.64.0.0/24", table: 254, dev: "rtA", class: "underlay", tier: "master"},
		"F": {prefix: "10.65.0.0/24", table: 254, dev: "rtA", class: "underlay", tier: "operator"},
		"G": {prefix: "10.50.0.0/24", table: 254, nh: "10.77.0.2", class: "underlay", tier: "master"}, // to Quartermaster
		"H": {prefix: "10.66.0.0/24", table: 254, dev: "rtA"},                                         // class pod (default)
		"I": {prefix: "10.52.0.0/24", table: 254, nh: "10.77.0.2", class: "underlay"},                 // to the incident target
	}
	pods := map[string]pod{
		"P1": {"p1", "10.244.0.11/24", "overlay", "operator"},
		"P2": {"p2", "10.244.0.12/24", "underlay", "operator"},
		"P3": {"p3", "10.244.0.13/24", "underlay", "master"},
		"P4": {"p4", "10.51.0.10/24", "underlay", "master"},   // the Prometheus pod
		"P5": {"p5", "10.50.0.5/24", "overlay", "site-owner"}, // the Quartermaster pod
	}
	kernel := func(name string) string {
		if r, ok := routes[name]; ok {
			s := r.prefix + " table 254"
			if r.dev != "" {
				s += " dev " + r.dev
			} else {
				s += " dev rtA"
			}
			if r.nh != "" {
				s += " via " + r.nh
			}
			return s
		}
		return strings.Split(pods[name].addr, "/")[0] + "/32 table 254 dev rtB"
	}
	entry := func(name string) string {
		if r, ok := routes[name]; ok {
			return r.path()
		}
		return "/kedge/pods/pod[container-id=" + pods[name].id + "][ifname=eth0]"
	}
	var rs []rt
	var ps []pod
	var all []string
	for k, r := range routes {
		rs, all = append(rs, r), append(all, k)
	}
	for k, p := range pods {
		ps, all = append(ps, p), append(all, k)
	}
	slices.Sort(all)
	_, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{
		{Path: path(t, "/kedge/routes/endpoints"), Val: jsonVal([]byte(eps))},
		{Path: path(t, "/kedge/routes"), Val: jsonVal(routesJSON(rs))},
		{Path: path(t, "/kedge/pods"), Val: jsonVal(podsJSON(ps))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The seed's CNI table applied to the entries above.
	steps := []struct {
		level uint64
		keep  []string
	}{
		{5, all},
		{3, []string{"A", "B", "C", "D", "E", "G", "H", "P1", "P3", "P4", "P5"}}, // F, I, P2: underlay below master
		{2, []string{"A", "B", "G", "I", "P4", "P5"}},                            // management, incident, to endpoints
		{1, []string{"B", "C", "G", "I", "P4"}},                                  // incident, monitoring-only, to Quartermaster (the notary flushes every record to it at 1)
		{5, all},
	}
	for _, s := range steps {
		setLevel(t, c, s.level)
		var want []string
		for _, k := range s.keep {
			want = append(want, kernel(k))
		}
		waitRoutes(t, n, fmt.Sprintf("level %d", s.level), want)
		for _, k := range all {
			status := "installed"
			if strings.HasPrefix(k, "P") {
				status = "active"
			}
			reason := ""
			if !slices.Contains(s.keep, k) {
				status, reason = "withheld", fmt.Sprintf("posture level %d", s.level)
			}
			waitState(t, c, entry(k), status, reason)
		}
	}
}

// TestRoutesDaemonBinary runs the real kedge-daemon with --netns and
// programs a route through its unix socket.
func TestRoutesDaemonBinary(t *testing.T) {
	n := newNS(t, "bin")
	dir := t.TempDir()
	bin := gcliBuild(t, dir, "github.com/guildhouse-co/kedge/server/cmd/kedge-daemon")
	sock := filepath.Join(dir, "kedge.sock")
	gcliDaemon(t, bin, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--socket", sock,
		"--netns", n.name, "--shm-path", "off", "--bpf-pin-dir", "off")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := gpb.NewGNMIClient(conn)
	r := rt{prefix: "10.90.0.0/24", table: 254, nh: "10.77.0.2"}
	eventually(t, "the unix socket to accept a Set", func() bool {
		_, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/routes"), Val: jsonVal(routesJSON([]rt{r}))}}})
		return err == nil
	})
	waitRoutes(t, n, "route from the binary", []string{"10.90.0.0/24 table 254 dev rtA via 10.77.0.2"})
	waitState(t, c, r.path(), "installed", "")
	if out := n.ipShow(t); !strings.Contains(out, "10.90.0.0/24 via 10.77.0.2 dev rtA") {
		t.Errorf("ip route show:\n%s", out)
	}
	deleteRoutes(t, c, r)
	waitRoutes(t, n, "route removed", []string{})
}
