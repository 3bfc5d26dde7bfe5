package kernel_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const proto = route.DefaultProtocol

func requireRoot(t testing.TB) {
	t.Helper()
	needs.Root(t, "creates network namespaces")
	needs.Tool(t, "ip", "builds and inspects namespaces")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNet is a throwaway namespace with a veth pair to a peer namespace:
// Dev (10.0.0.1/24, fd00::1/64) here, 10.0.0.2/fd00::2 on the other side.
type testNet struct {
	NS, Peer string
	Dev      string
}

func newNetNS(t testing.TB) string {
	t.Helper()
	name := "route-" + randHex(5)
	ip(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

func newTestNet(t testing.TB) testNet {
	t.Helper()
	requireRoot(t)
	n := testNet{NS: newNetNS(t), Peer: newNetNS(t)}
	id := randHex(3)
	n.Dev = "rt" + id + "a"
	peer := "rt" + id + "b"
	ip(t, "-n", n.NS, "link", "add", n.Dev, "type", "veth", "peer", "name", peer, "netns", n.Peer)
	ip(t, "-n", n.NS, "addr", "add", "10.0.0.1/24", "dev", n.Dev)
	ip(t, "-n", n.NS, "addr", "add", "fd00::1/64", "dev", n.Dev, "nodad")
	ip(t, "-n", n.NS, "link", "set", n.Dev, "up")
	ip(t, "-n", n.Peer, "addr", "add", "10.0.0.2/24", "dev", peer)
	ip(t, "-n", n.Peer, "addr", "add", "fd00::2/64", "dev", peer, "nodad")
	ip(t, "-n", n.Peer, "link", "set", peer, "up")
	return n
}

func newBackend(t testing.TB, ns string) *kernel.Backend {
	t.Helper()
	b, err := kernel.New(kernel.Options{NetNS: ns})
	if err != nil {
		t.Fatalf("new backend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// render is the canonical text of one route, shared by every view below.
func render(dst netip.Prefix, gw netip.Addr, dev string, table, metric uint32, scope string, src netip.Addr) string {
	s := dst.String()
	if gw.IsValid() {
		s += " via " + gw.String()
	}
	if dev != "" {
		s += " dev " + dev
	}
	s += fmt.Sprintf(" table %d metric %d scope %s", table, metric, scope)
	if src.IsValid() {
		s += " src " + src.String()
	}
	return s
}

// want renders what the kernel should hold for cfg's routes, sorted. A
// route without a device renders with the one the kernel picks (dev).
func want(routes []route.Route, dev string) []string {
	var out []string
	for _, r := range routes {
		n := r.Normalize()
		d := n.Device
		if d == "" {
			d = dev
		}
		out = append(out, render(n.Dst, n.Gateway, d, n.Table, n.Metric, n.Scope.String(), n.Src))
	}
	slices.Sort(out)
	return out
}

// ipShow parses `ip -n NS -4/-6 route show table all proto 107`.
func ipShow(t testing.TB, ns string) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		text := ip(t, "-n", ns, fam, "route", "show", "table", "all", "proto", strconv.Itoa(int(proto)))
		for line := range strings.Lines(text) {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			dst := f[0]
			if dst == "default" {
				dst = map[string]string{"-4": "0.0.0.0/0", "-6": "::/0"}[fam]
			} else if !strings.Contains(dst, "/") {
				dst += map[string]string{"-4": "/32", "-6": "/128"}[fam]
			}
			kv := map[string]string{"table": "254", "metric": "0", "scope": "global"}
			for i := 1; i+1 < len(f); i++ {
				switch f[i] {
				case "via", "dev", "table", "metric", "scope", "src", "proto", "pref":
					kv[f[i]] = f[i+1]
					i++
				}
			}
			if kv["table"] == "main" {
				kv["table"] = "254"
			}
			table, _ := strconv.Atoi(kv["table"])
			metric, _ := strconv.Atoi(kv["metric"])
			var gw, src netip.Addr
			if v, ok := kv["via"]; ok {
				gw = netip.MustParseAddr(strings.TrimPrefix(strings.TrimPrefix(v, "inet6 "), "inet "))
			}
			if v, ok := kv["src"]; ok {
				src = netip.MustParseAddr(v)
			}
			out = append(out, render(netip.MustParsePrefix(dst), gw, kv["dev"], uint32(table), uint32(metric), kv["scope"], src))
		}
	}
	slices.Sort(out)
	return out
}

// nlShow lists the same routes through the netlink API.
func nlShow(t testing.TB, ns string) []string {
	t.Helper()
	h := nsHandle(t, ns)
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: netlink.RouteProtocol(proto)},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	var out []string
	for _, r := range rs {
		dst, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		gw, _ := netip.AddrFromSlice(r.Gw)
		src, _ := netip.AddrFromSlice(r.Src)
		scope := map[netlink.Scope]string{netlink.SCOPE_UNIVERSE: "global", netlink.SCOPE_LINK: "link", netlink.SCOPE_HOST: "host"}[r.Scope]
		out = append(out, render(netip.PrefixFrom(dst.Unmap(), bits), gw.Unmap(), names[r.LinkIndex], uint32(r.Table), uint32(r.Priority), scope, src.Unmap()))
	}
	slices.Sort(out)
	return out
}

func nsHandle(t testing.TB, ns string) *netlink.Handle {
	t.Helper()
	nh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open netns %s: %v", ns, err)
	}
	t.Cleanup(func() { nh.Close() })
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns, err)
	}
	t.Cleanup(h.Close)
	return h
}

// monitor records route notifications in a namespace.
type monitor struct {
	mu     sync.Mutex
	events []netlink.RouteUpdate
}

func newMonitor(t testing.TB, ns string) *monitor {
	t.Helper()
	nh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open netns %s: %v", ns, err)
	}
	t.Cleanup(func() { nh.Close() })
	ch := make(chan netlink.RouteUpdate, 1024)
	done := make(chan struct{})
	var closing atomic.Bool
	if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
		Namespace: &nh, ReceiveBufferSize: 8 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			if !closing.Load() { // closing the socket makes the reader fail
				t.Errorf("route monitor: %v", err)
			}
		},
	}); err != nil {
		t.Fatalf("subscribe to routes: %v", err)
	}
	m := &monitor{}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for u := range ch {
			m.mu.Lock()
			m.events = append(m.events, u)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { closing.Store(true); close(done); <-stopped })
	return m
}

// barrier adds and removes a foreign marker route and waits until the
// monitor has seen both, so every earlier event has been delivered.
func (m *monitor) barrier(t testing.TB, ns string) {
	t.Helper()
	marker := "10.255." + strconv.Itoa(int(randHex(1)[0])) + ".0/24"
	ip(t, "-n", ns, "route", "add", marker, "dev", "lo", "proto", "static")
	ip(t, "-n", ns, "route", "del", marker, "dev", "lo", "proto", "static")
	waitFor(t, 5*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, e := range m.events {
			if e.Type == unix.RTM_DELROUTE && e.Dst != nil && e.Dst.String() == marker {
				return true
			}
		}
		return false
	})
}

// take returns the events seen so far and forgets them.
func (m *monitor) take() []netlink.RouteUpdate {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev := m.events
	m.events = nil
	return ev
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %v", d)
		case <-tick.C:
		}
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// watchedBackend is a backend in n's namespace whose lost-grace (a
// second) runs on a clock the test moves with advance, its Watch running
// on ctx until the test ends: drifts receives each drift it reports.
func watchedBackend(t *testing.T, n testNet) (b *kernel.Backend, ctx context.Context, advance func(time.Duration), drifts chan struct{}) {
	t.Helper()
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance = func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b, err := kernel.New(kernel.Options{NetNS: n.NS, LostGrace: time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	drifts = make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, func() { drifts <- struct{}{} }) }()
	t.Cleanup(func() { cancel(); <-done })
	return b, ctx, advance, drifts
}

// drainDrifts empties drifts of what Watch reported so far.
func drainDrifts(drifts chan struct{}) {
	for {
		select {
		case <-drifts:
		default:
			return
		}
	}
}

// awaitDrift fails the test with msg unless Watch reports a drift
// within 5 s.
func awaitDrift(t *testing.T, drifts chan struct{}, msg string) {
	t.Helper()
	select {
	case <-drifts:
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
	}
}

// noDrift fails the test with msg if Watch has reported a drift.
func noDrift(t *testing.T, drifts chan struct{}, msg string) {
	t.Helper()
	select {
	case <-drifts:
		t.Fatal(msg)
	default:
	}
}
