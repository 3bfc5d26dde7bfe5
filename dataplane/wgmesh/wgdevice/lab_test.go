package wgdevice_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/host"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// A lab is n network namespaces, each with one veth into a bridge living in
// an extra namespace, and each hosting its own userspace WireGuard device.
// Every name carries a random id so parallel package runs never collide;
// addresses exist only inside the lab's namespaces.
type lab struct {
	id    string
	s     byte // second octet: underlay 10.s.1.x/24, tunnel 10.s.2.x/24
	nodes []*node
	wg    *wgctrl.Client
}

type node struct {
	lab      *lab
	i        int
	name     string // node name, also the peer name others use
	ns       string // netns path
	iface    string // WireGuard interface, unique per lab (shared UAPI dir)
	key      wgtypes.Key
	pub      wgtypes.Key
	underlay netip.Addr
	tunnel   netip.Addr
	host     *host.Host
	be       *wgdevice.Backend
}

const wgPort = 51820

func requireRoot(tb testing.TB) {
	tb.Helper()
	needs.Root(tb, "creates network namespaces and TUN devices")
	needs.TUN(tb)
}

// newNetns creates a named namespace without moving the calling goroutine.
func newNetns(tb testing.TB, name string) string {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get netns: %v", err)
	}
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// Leave the thread locked: it dies with this goroutine rather
		// than serving others from the wrong namespace.
		tb.Fatalf("restore netns: %v", serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	h.Close()
	tb.Cleanup(func() { netns.DeleteNamed(name) })
	return "/var/run/netns/" + name
}

func handleAt(tb testing.TB, path string) *netlink.Handle {
	tb.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatalf("open netns %s: %v", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", path, err)
	}
	return h
}

func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// newLab builds the namespaces, underlay and devices; nothing is configured
// through WireGuard yet.
func newLab(tb testing.TB, n int) *lab {
	tb.Helper()
	requireRoot(tb)
	l := &lab{id: fmt.Sprintf("%05x", rand.IntN(1<<20)), s: byte(10 + rand.IntN(240))}
	brNs := newNetns(tb, "wgmesh-"+l.id+"-br")
	bh := handleAt(tb, brNs)
	defer bh.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br" + l.id}}
	must(tb, "add bridge", bh.LinkAdd(br))
	must(tb, "bridge up", bh.LinkSetUp(br))
	for i := range n {
		nd := &node{
			lab:      l,
			i:        i,
			name:     fmt.Sprintf("n%d", i),
			iface:    fmt.Sprintf("kw%s%d", l.id, i),
			underlay: netip.AddrFrom4([4]byte{10, l.s, 1, byte(i + 1)}),
			tunnel:   netip.AddrFrom4([4]byte{10, l.s, 2, byte(i + 1)}),
		}
		nd.ns = newNetns(tb, fmt.Sprintf("wgmesh-%s-n%d", l.id, i))
		k, err := wgtypes.GeneratePrivateKey()
		must(tb, "generate key", err)
		nd.key, nd.pub = k, k.PublicKey()

		nsh, err := netns.GetFromPath(nd.ns)
		must(tb, "open node netns", err)
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("vb%s%d", l.id, i), MasterIndex: br.Index},
			PeerName:      fmt.Sprintf("ve%s%d", l.id, i),
			PeerNamespace: netlink.NsFd(nsh),
		}
		err = bh.LinkAdd(veth)
		nsh.Close()
		must(tb, "add veth", err)
		must(tb, "veth up", bh.LinkSetUp(veth))
		h := handleAt(tb, nd.ns)
		lo, err := h.LinkByName("lo")
		must(tb, "find lo", err)
		must(tb, "lo up", h.LinkSetUp(lo))
		ve, err := h.LinkByName(veth.PeerName)
		must(tb, "find veth peer", err)
		a, _ := netlink.ParseAddr(netip.PrefixFrom(nd.underlay, 24).String())
		must(tb, "underlay address", h.AddrAdd(ve, a))
		must(tb, "underlay up", h.LinkSetUp(ve))
		h.Close()

		nd.host, err = host.Start(host.Config{Name: nd.iface, Netns: nd.ns, Mode: host.ModeUserspace, Logger: testLogger()})
		must(tb, "start host", err)
		tb.Cleanup(func() { nd.host.Close() })
		nd.be, err = wgdevice.New(wgdevice.Options{Netns: nd.ns, Logger: testLogger()})
		must(tb, "new backend", err)
		tb.Cleanup(func() { nd.be.Close() })
		l.nodes = append(l.nodes, nd)
	}
	// Boot: every device gets its key, port and address before any mesh
	// config, as a node does when its daemon starts. Without this the first
	// initiations reach ports still closed and wait out WireGuard's 5 s retry.
	for _, nd := range l.nodes {
		cfg := nd.config()
		cfg.Peers = nil
		must(tb, "boot "+nd.name, nd.be.Set(context.Background(), cfg))
	}
	c, err := wgctrl.New()
	must(tb, "wgctrl client", err)
	tb.Cleanup(func() { c.Close() })
	l.wg = c
	return l
}

// testLogger logs devices and backends to stderr when KEDGE_WG_DEBUG is set.
func testLogger() *slog.Logger {
	if os.Getenv("KEDGE_WG_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// peerOf is how the other nodes see n.
func (n *node) peerOf() wgmesh.Peer {
	return wgmesh.Peer{
		Name:                n.name,
		PublicKey:           n.pub.String(),
		Endpoint:            netip.AddrPortFrom(n.underlay, wgPort).String(),
		AllowedIPs:          []netip.Prefix{netip.PrefixFrom(n.tunnel, 32)},
		PersistentKeepalive: 25 * time.Second,
	}
}

// config is n's full-mesh config.
func (n *node) config() wgmesh.Config {
	cfg := wgmesh.Config{
		Interface:  n.iface,
		PrivateKey: wgmesh.Key(n.key),
		ListenPort: wgPort,
		Addresses:  []netip.Prefix{netip.PrefixFrom(n.tunnel, 24)},
	}
	for _, o := range n.lab.nodes {
		if o != n {
			cfg.Peers = append(cfg.Peers, o.peerOf())
		}
	}
	return cfg
}

// setAll applies every node's full mesh concurrently, as independent nodes would.
func (l *lab) setAll(tb testing.TB) {
	tb.Helper()
	errs := make([]error, len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.be.Set(context.Background(), n.config())
		}()
	}
	wg.Wait()
	must(tb, "set mesh", errors.Join(errs...))
}

// waitHandshakes waits until every node has a handshake newer than after
// with each of its peers. It polls wgctrl (there is no event to wait on),
// skipping nodes already complete.
func (l *lab) waitHandshakes(tb testing.TB, nodes []*node, after time.Time, timeout time.Duration) {
	tb.Helper()
	if err := l.handshaked(nodes, after, timeout); err != nil {
		tb.Fatal(err)
	}
}

func (l *lab) handshaked(nodes []*node, after time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// One device read per poll, over the raw UAPI socket: a wgctrl read
	// also derives the public key and parses everything, and a poller that
	// costly steals the CPU the handshakes need. Handshake times only grow,
	// so a node found complete stays complete.
	for _, n := range nodes {
		for {
			missing, err := uapiMissing(n.iface, after)
			if err != nil {
				return err
			}
			if missing < 0 {
				missing = 1 // no peers yet
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no handshake within %v: %s lacks %d", timeout, n.name, missing)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// uapiMissing counts the peers of a userspace device without a handshake
// after the given time; -1 means the device has no peers.
func uapiMissing(iface string, after time.Time) (int, error) {
	c, err := net.Dial("unix", "/var/run/wireguard/"+iface+".sock")
	if err != nil {
		return 0, fmt.Errorf("dial uapi %s: %w", iface, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("get=1\n\n")); err != nil {
		return 0, fmt.Errorf("write uapi %s: %w", iface, err)
	}
	peers, missing := 0, 0
	var sec int64
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "":
			if peers == 0 {
				return -1, nil
			}
			return missing, nil
		case "public_key":
			peers++
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ := strconv.ParseInt(v, 10, 64)
			if !time.Unix(sec, nsec).After(after) {
				missing++
			}
		}
	}
	return 0, fmt.Errorf("read uapi %s: %v", iface, sc.Err())
}

// udpIn opens a UDP socket inside a namespace.
func udpIn(tb testing.TB, ns string, laddr netip.AddrPort) *net.UDPConn {
	tb.Helper()
	t, err := nsthread.Start(ns)
	must(tb, "enter netns", err)
	defer t.Close()
	var c *net.UDPConn
	must(tb, "listen udp", t.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(laddr))
		return err
	}))
	tb.Cleanup(func() { c.Close() })
	return c
}

const echoPort = 7007

// serveEcho answers every datagram to n's tunnel address on echoPort.
func (n *node) serveEcho(tb testing.TB) {
	c := udpIn(tb, n.ns, netip.AddrPortFrom(n.tunnel, echoPort))
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:k], from)
		}
	}()
}

// echo sends one probe from n to dst and reports whether it came back.
func (n *node) echo(tb testing.TB, dst netip.Addr, timeout time.Duration) bool {
	tb.Helper()
	c := udpIn(tb, n.ns, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	defer c.Close()
	msg := []byte("kedge-probe-" + n.name)
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if _, err := c.WriteToUDPAddrPort(msg, netip.AddrPortFrom(dst, echoPort)); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		k, _, err := c.ReadFromUDPAddrPort(buf)
		if err == nil && string(buf[:k]) == string(msg) {
			return true
		}
	}
	return false
}

// stream is a continuous echo flow with per-datagram sequence numbers.
type stream struct {
	c    *net.UDPConn
	sent atomic.Uint64
	got  atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func (n *node) startStream(tb testing.TB, dst netip.Addr, every time.Duration) *stream {
	s := &stream{c: udpIn(tb, n.ns, netip.AddrPortFrom(netip.IPv4Unspecified(), 0)),
		stop: make(chan struct{}), done: make(chan struct{})}
	seen := make(map[uint64]bool)
	go func() { // reader
		buf := make([]byte, 64)
		for {
			k, _, err := s.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if k == 8 {
				seq := binary.BigEndian.Uint64(buf[:8])
				if !seen[seq] {
					seen[seq] = true
					s.got.Add(1)
				}
			}
		}
	}()
	go func() { // writer
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var b [8]byte
		for seq := uint64(0); ; seq++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(b[:], seq)
			if _, err := s.c.WriteToUDPAddrPort(b[:], netip.AddrPortFrom(dst, echoPort)); err == nil {
				s.sent.Add(1)
			}
		}
	}()
	return s
}

// finish stops sending, waits (bounded) for the replies in flight, and
// returns sent and received counts.
func (s *stream) finish() (sent, got uint64) {
	close(s.stop)
	<-s.done
	deadline := time.Now().Add(2 * time.Second)
	for s.got.Load() < s.sent.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return s.sent.Load(), s.got.Load()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
