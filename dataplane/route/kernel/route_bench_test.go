package kernel_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// countOurs counts Kedge-protocol routes through the netlink API.
func countOurs(b *testing.B, ns string) int {
	b.Helper()
	return len(nlShow(b, ns))
}

// installBackend installs routes with the backend's batched Set into a
// fresh namespace; it also times a no-op Set and removing everything.
func installBackend(b *testing.B, total int, gw bool) (install, noop, remove time.Duration, sends int) {
	n := newTestNet(b)
	be := newBackend(b, n.NS)
	routes := benchRoutes(total, n.Dev, gw)
	start := time.Now()
	if err := be.Set(context.Background(), route.Config{Routes: routes}); err != nil {
		b.Fatalf("set: %v", err)
	}
	install = time.Since(start)
	sends = be.Status().Sends
	if got := countOurs(b, n.NS); got != total {
		b.Fatalf("backend installed %d routes, want %d", got, total)
	}
	start = time.Now()
	if err := be.Set(context.Background(), route.Config{Routes: routes}); err != nil {
		b.Fatalf("noop set: %v", err)
	}
	noop = time.Since(start)
	start = time.Now()
	if err := be.Set(context.Background(), route.Config{}); err != nil {
		b.Fatalf("remove set: %v", err)
	}
	remove = time.Since(start)
	return install, noop, remove, sends
}

// installIPBatch installs the same routes with `ip -n NS -batch FILE`.
func installIPBatch(b *testing.B, total int, gw bool) time.Duration {
	n := newTestNet(b)
	var sb strings.Builder
	via := ""
	if gw {
		via = "via 10.0.0.2 "
	}
	for _, r := range manyRoutes(total, n.Dev) {
		fmt.Fprintf(&sb, "route add %s %sdev %s proto %d\n", r.Dst, via, n.Dev, proto)
	}
	file := filepath.Join(b.TempDir(), "routes.batch")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("ip", "-n", n.NS, "-batch", file).CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v: %s", err, out)
	}
	d := time.Since(start)
	if got := countOurs(b, n.NS); got != total {
		b.Fatalf("ip -batch installed %d routes, want %d", got, total)
	}
	return d
}

// installNetlink installs the same routes with one vishvananda/netlink
// RouteAdd (one request, one ack) per route.
func installNetlink(b *testing.B, total int, gw bool) time.Duration {
	n := newTestNet(b)
	h := nsHandle(b, n.NS)
	link, err := h.LinkByName(n.Dev)
	if err != nil {
		b.Fatal(err)
	}
	var gwIP net.IP
	scope := netlink.SCOPE_LINK
	if gw {
		gwIP, scope = net.ParseIP("10.0.0.2"), netlink.SCOPE_UNIVERSE
	}
	routes := manyRoutes(total, n.Dev)
	start := time.Now()
	for _, r := range routes {
		nr := &netlink.Route{Dst: &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)},
			Gw: gwIP, Scope: scope, LinkIndex: link.Attrs().Index, Protocol: netlink.RouteProtocol(proto)}
		if err := h.RouteAdd(nr); err != nil {
			b.Fatalf("route add %s: %v", r.Dst, err)
		}
	}
	d := time.Since(start)
	if got := countOurs(b, n.NS); got != total {
		b.Fatalf("netlink installed %d routes, want %d", got, total)
	}
	return d
}

// installRaw is the kernel's own cost, the floor under any netlink
// client: the same routes as prebuilt RTM_NEWROUTE messages (onlink,
// main table), 512 per sendmsg, with every request acknowledged or (ack
// false) only failures reported. Only the send loop is timed.
func installRaw(b *testing.B, total int, ack bool) time.Duration {
	n := newTestNet(b)
	link, err := nsHandle(b, n.NS).LinkByName(n.Dev)
	if err != nil {
		b.Fatal(err)
	}
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	const batch = 512
	var bufs [][]byte
	for i, r := range manyRoutes(total, n.Dev) {
		if i%batch == 0 {
			bufs = append(bufs, nil)
		}
		m := bufs[len(bufs)-1]
		m = binary.NativeEndian.AppendUint32(m, 16+12+3*8)
		m = binary.NativeEndian.AppendUint16(m, unix.RTM_NEWROUTE)
		m = binary.NativeEndian.AppendUint16(m, flags)
		m = binary.NativeEndian.AppendUint32(m, uint32(i+1))
		m = binary.NativeEndian.AppendUint32(m, 0)
		m = append(m, unix.AF_INET, 32, 0, 0, unix.RT_TABLE_MAIN, proto, unix.RT_SCOPE_LINK, unix.RTN_UNICAST, 0, 0, 0, 0)
		for _, a := range []struct {
			typ uint16
			v   []byte
		}{{unix.RTA_DST, r.Dst.Addr().AsSlice()}, {unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(link.Attrs().Index))},
			{unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, unix.RT_TABLE_MAIN)}} {
			m = binary.NativeEndian.AppendUint16(m, 8)
			m = binary.NativeEndian.AppendUint16(m, a.typ)
			m = append(m, a.v...)
		}
		bufs[len(bufs)-1] = m
	}
	var d time.Duration
	err = inNS(n.NS, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		rb := make([]byte, 1<<20)
		start := time.Now()
		for i, m := range bufs {
			if err := unix.Sendto(fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return err
			}
			if !ack {
				continue
			}
			want := min(batch, total-i*batch)
			for got := 0; got < want; {
				k, _, err := unix.Recvfrom(fd, rb, 0)
				if err != nil {
					return err
				}
				for off := 0; off+unix.NLMSG_HDRLEN <= k; got++ {
					l := int(binary.NativeEndian.Uint32(rb[off:]))
					if code := int32(binary.NativeEndian.Uint32(rb[off+16:])); code != 0 {
						return fmt.Errorf("route add: %w", unix.Errno(-code))
					}
					off += (l + 3) &^ 3
				}
			}
		}
		d = time.Since(start)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if got := countOurs(b, n.NS); got != total {
		b.Fatalf("raw netlink installed %d routes, want %d", got, total)
	}
	return d
}

// inNS runs fn on a locked thread inside the named namespace.
func inNS(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchRoutes is manyRoutes, or the same destinations straight on dev.
func benchRoutes(total int, dev string, gw bool) []route.Route {
	routes := manyRoutes(total, dev)
	if !gw {
		for i := range routes {
			routes[i].Gateway = netip.Addr{}
		}
	}
	return routes
}

// BenchmarkInstall100k installs the same 100,000 /32 routes on a veth three
// ways, each into its own fresh namespace, interleaved three rounds so
// machine noise hits all three: the backend's batched Set, `ip -batch`, and
// one vishvananda/netlink RouteAdd per route. It reports the medians. The
// gateway case makes the kernel validate a next hop per route, which costs
// every method the same; the onlink case shows the per-request overhead.
// Run with -benchtime 1x; one iteration does the whole workload.
func BenchmarkInstall100k(b *testing.B) {
	requireRoot(b)
	b.Run("gateway", func(b *testing.B) { benchInstall(b, true) })
	b.Run("onlink", func(b *testing.B) { benchInstall(b, false) })
}

func benchInstall(b *testing.B, gw bool) {
	const total, rounds = 100000, 3
	for range b.N {
		var tBE, tIP, tNL, tNoop, tRemove, tRaw, tRawNoAck []time.Duration
		sends := 0
		for range rounds {
			install, noop, remove, s := installBackend(b, total, gw)
			tBE, tNoop, tRemove, sends = append(tBE, install), append(tNoop, noop), append(tRemove, remove), s
			tIP = append(tIP, installIPBatch(b, total, gw))
			tNL = append(tNL, installNetlink(b, total, gw))
			if !gw {
				tRaw, tRawNoAck = append(tRaw, installRaw(b, total, true)), append(tRawNoAck, installRaw(b, total, false))
			}
		}
		be, ipb, nl := median(tBE), median(tIP), median(tNL)
		if !gw {
			// The floor: what the kernel alone takes, next to ip -batch.
			b.ReportMetric(median(tRaw).Seconds()/ipb.Seconds(), "raw-acked/ipbatch_time")
			b.ReportMetric(median(tRawNoAck).Seconds()/ipb.Seconds(), "raw-unacked/ipbatch_time")
		}
		b.ReportMetric(total/be.Seconds(), "backend_routes/s")
		b.ReportMetric(total/ipb.Seconds(), "ipbatch_routes/s")
		b.ReportMetric(total/nl.Seconds(), "netlink1_routes/s")
		b.ReportMetric(be.Seconds()/ipb.Seconds(), "backend/ipbatch_time")
		b.ReportMetric(be.Seconds()/nl.Seconds(), "backend/netlink1_time")
		b.ReportMetric(float64(median(tNoop).Milliseconds()), "noop_set_ms")
		b.ReportMetric(float64(median(tRemove).Milliseconds()), "remove_all_ms")
		b.ReportMetric(float64(sends), "sendmsgs")
	}
}

// BenchmarkSingleRouteSet measures Set latency when a Config of N routes
// grows to N+1, for N = 0..999, and reports p50/p99.
func BenchmarkSingleRouteSet(b *testing.B) {
	requireRoot(b)
	const total = 1000
	for range b.N {
		n := newTestNet(b)
		be := newBackend(b, n.NS)
		routes := manyRoutes(total, n.Dev)
		lat := make([]time.Duration, 0, total)
		for i := 1; i <= total; i++ {
			start := time.Now()
			if err := be.Set(context.Background(), route.Config{Routes: routes[:i]}); err != nil {
				b.Fatalf("set %d: %v", i, err)
			}
			lat = append(lat, time.Since(start))
			if st := be.Status(); st.Added != 1 {
				b.Fatalf("set %d added %d routes, want 1", i, st.Added)
			}
		}
		if got := countOurs(b, n.NS); got != total {
			b.Fatalf("installed %d routes, want %d", got, total)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_us")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max_us")
	}
}

// BenchmarkBatchSize installs 20,000 routes with different requests-per-
// sendmsg, to show where batching stops paying. Three interleaved rounds,
// medians reported.
func BenchmarkBatchSize(b *testing.B) {
	requireRoot(b)
	const total, rounds = 20000, 3
	sizes := []int{1, 16, 64, 256, 512, 1024}
	for range b.N {
		times := make([][]time.Duration, len(sizes))
		for range rounds {
			for i, size := range sizes {
				n := newTestNet(b)
				be, err := kernel.New(kernel.Options{NetNS: n.NS, Batch: size})
				if err != nil {
					b.Fatal(err)
				}
				routes := manyRoutes(total, n.Dev)
				start := time.Now()
				if err := be.Set(context.Background(), route.Config{Routes: routes}); err != nil {
					b.Fatalf("set: %v", err)
				}
				times[i] = append(times[i], time.Since(start))
				be.Close()
			}
		}
		for i, size := range sizes {
			b.ReportMetric(total/median(times[i]).Seconds(), fmt.Sprintf("batch%d_routes/s", size))
		}
	}
}

// BenchmarkPatchVsSet adds 300 routes one at a time to a backend holding
// 1,000 and one holding 100,000, each way: a Set of the whole Config (the
// fast plan, walking every route) and a Patch of the one route. Per-
// change latency p50/p99 in µs for each, side by side in one run.
func BenchmarkPatchVsSet(b *testing.B) {
	requireRoot(b)
	const adds = 300
	for range b.N {
		for _, size := range []int{1000, 100_000} {
			n := newTestNet(b)
			routes := manyRoutes(size+2*adds, n.Dev)
			for _, patch := range []bool{false, true} {
				be := newBackend(b, n.NS)
				// Each way starts from the same table (the second's first Set
				// removes the first's adds), its own routes after it.
				cfg := slices.Clone(routes[:size])
				if err := be.Set(context.Background(), route.Config{Routes: cfg}); err != nil {
					b.Fatalf("set: %v", err)
				}
				extra := routes[size : size+adds]
				if patch {
					extra = routes[size+adds:]
				}
				lat := make([]time.Duration, 0, adds)
				for _, r := range extra {
					start := time.Now()
					var err error
					if patch {
						err = be.Patch(context.Background(), route.Patch{Put: []route.Route{r}})
					} else {
						cfg = append(cfg, r)
						err = be.Set(context.Background(), route.Config{Routes: cfg})
					}
					lat = append(lat, time.Since(start))
					if err != nil {
						b.Fatalf("add %s: %v", r.Dst, err)
					}
					if st := be.Status(); st.Added != 1 {
						b.Fatalf("add %s: added %d routes, want 1", r.Dst, st.Added)
					}
				}
				be.Close()
				slices.Sort(lat)
				way := "set"
				if patch {
					way = "patch"
				}
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), fmt.Sprintf("%s-%d-p50_us", way, size))
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), fmt.Sprintf("%s-%d-p99_us", way, size))
			}
			// The patching backend's first Set removed the other's adds.
			if got := countOurs(b, n.NS); got != size+adds {
				b.Fatalf("installed %d routes, want %d", got, size+adds)
			}
		}
	}
}
