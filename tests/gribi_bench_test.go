package tests

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	aftpb "github.com/openconfig/gribi/v1/proto/gribi_aft"
	spb "github.com/openconfig/gribi/v1/proto/service"
	wpb "github.com/openconfig/ygot/proto/ywrapper"
	"golang.org/x/sys/unix"
)

// gribiOps are n IPv4 host entries from 10.128.0.1 through next-hop
// group 1, as AFT operations with ids from first, in requests of per.
func gribiOps(n int, first uint64, per int, elec uint64) []*spb.ModifyRequest {
	var out []*spb.ModifyRequest
	a := netip.MustParseAddr("10.128.0.1")
	id := first
	for n > 0 {
		k := min(per, n)
		req := &spb.ModifyRequest{Operation: make([]*spb.AFTOperation, 0, k)}
		for range k {
			req.Operation = append(req.Operation, &spb.AFTOperation{Id: id, NetworkInstance: "DEFAULT", Op: spb.AFTOperation_ADD,
				ElectionId: &spb.Uint128{Low: elec},
				Entry: &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: netip.PrefixFrom(a, 32).String(),
					Ipv4Entry: &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{Value: 1}}}}})
			a = a.Next()
			id++
		}
		out = append(out, req)
		n -= k
	}
	return out
}

// processCPU is this process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileWindow starts a CPU profile of a benchmark's measured window
// alone (GRIBI100k's, Routes100k's) when KEDGE_BENCH_CPUPROFILE names a
// file prefix (the file is the prefix, a dash and tag): -test.cpuprofile
// also takes the setup, the ip -batch run and the count of the routes
// afterwards, which hide the daemon's share.
// The function it returns stops the profile.
func profileWindow(b *testing.B, tag string) (stop func()) {
	prefix := os.Getenv("KEDGE_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + tag)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// BenchmarkGRIBI100k: 100,000 IPv4 entries (one next-hop group, one next
// hop) through one gRIBI Modify stream into a running daemon until the
// last route is in the kernel and until the last FIB_PROGRAMMED, side by
// side with `ip -batch` installing the same routes in another namespace;
// with the notary on (the default: it records every commit of the AFT)
// and off.
func BenchmarkGRIBI100k(b *testing.B) {
	for _, notary := range []string{"on", "off"} {
		b.Run("notary="+notary, func(b *testing.B) { benchGRIBI100k(b, notary) })
	}
}

func benchGRIBI100k(b *testing.B, notary string) {
	const total = 100_000
	for range b.N {
		nsIP := gribiNS(b)
		f := filepath.Join(b.TempDir(), "routes.batch")
		var sb strings.Builder
		a := netip.MustParseAddr("10.128.0.1")
		for range total {
			fmt.Fprintf(&sb, "route add %s/32 via 192.0.2.1 proto 107\n", a)
			a = a.Next()
		}
		last := a.Prev().String()
		if err := os.WriteFile(f, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		cmd := exec.Command("ip", "-n", nsIP.name, "-batch", f)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ip -batch: %v\n%s", err, out)
		}
		ipDur := time.Since(t0)
		ipCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if got := nsIP.countKedge(b); got != total {
			b.Fatalf("ip -batch installed %d routes, want %d", got, total)
		}

		ns := gribiNS(b)
		cfg := daemonCfg(b, b.TempDir(), ns.name)
		cfg.Notary = notary
		stub, _, stop := startGRIBIWith(b, cfg)
		reqs := gribiOps(total, 3, 1000, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		st, err := stub.Modify(ctx)
		if err != nil {
			b.Fatal(err)
		}
		setup := []*spb.ModifyRequest{
			{Params: &spb.SessionParameters{Redundancy: spb.SessionParameters_SINGLE_PRIMARY,
				Persistence: spb.SessionParameters_PRESERVE, AckType: spb.SessionParameters_RIB_AND_FIB_ACK}},
			{ElectionId: &spb.Uint128{Low: 1}},
			{Operation: []*spb.AFTOperation{
				{Id: 1, NetworkInstance: "DEFAULT", Op: spb.AFTOperation_ADD, ElectionId: &spb.Uint128{Low: 1},
					Entry: &spb.AFTOperation_NextHop{NextHop: &aftpb.Afts_NextHopKey{Index: 1,
						NextHop: &aftpb.Afts_NextHop{IpAddress: &wpb.StringValue{Value: "192.0.2.1"}}}}},
				{Id: 2, NetworkInstance: "DEFAULT", Op: spb.AFTOperation_ADD, ElectionId: &spb.Uint128{Low: 1},
					Entry: &spb.AFTOperation_NextHopGroup{NextHopGroup: &aftpb.Afts_NextHopGroupKey{Id: 1,
						NextHopGroup: &aftpb.Afts_NextHopGroup{NextHop: []*aftpb.Afts_NextHopGroup_NextHopKey{{Index: 1}}}}}},
			}},
		}
		for _, r := range setup {
			if err := st.Send(r); err != nil {
				b.Fatal(err)
			}
		}
		// Wait for the group's FIB ACK, so the measurement is the 100,000
		// entries alone.
		waitFIB := func(want int) (time.Duration, error) {
			n := 0
			for n < want {
				resp, err := st.Recv()
				if err != nil {
					return 0, err
				}
				for _, r := range resp.GetResult() {
					switch r.GetStatus() {
					case spb.AFTResult_FIB_PROGRAMMED:
						n++
					case spb.AFTResult_FAILED, spb.AFTResult_FIB_FAILED:
						return 0, fmt.Errorf("operation %d: %s %s", r.GetId(), r.GetStatus(), r.GetErrorDetails().GetErrorMessage())
					}
				}
			}
			return 0, nil
		}
		if _, err := waitFIB(2); err != nil {
			b.Fatal(err)
		}
		kernelDone := make(chan time.Duration, 1)
		rss0 := resetPeakRSS(b)
		cpu0 := processCPU(b)
		stopProfile := profileWindow(b, "notary-"+notary)
		t0 = time.Now()
		go func() {
			for !ns.present(last) {
				if time.Since(t0) > 4*time.Minute {
					kernelDone <- 0
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
			kernelDone <- time.Since(t0)
		}()
		go func() {
			for _, r := range reqs {
				if st.Send(r) != nil {
					return
				}
			}
		}()
		if _, err := waitFIB(total); err != nil {
			b.Fatal(err)
		}
		ackDur := time.Since(t0)
		stopProfile()
		kedgeDur := <-kernelDone
		kedgeCPU := processCPU(b) - cpu0
		peakMB := float64(peakRSS(b)-rss0) / (1 << 20)
		if kedgeDur == 0 {
			b.Fatal("the last route never appeared")
		}
		if got := ns.countKedge(b); got != total {
			b.Fatalf("kedge installed %d routes, want %d", got, total)
		}
		cancel()
		stop()
		b.ReportMetric(kedgeDur.Seconds(), "kedge-s")
		b.ReportMetric(ackDur.Seconds(), "last-fib-ack-s")
		b.ReportMetric(ipDur.Seconds(), "ip-batch-s")
		b.ReportMetric(kedgeDur.Seconds()/ipDur.Seconds(), "kedge/ip")
		b.ReportMetric(ackDur.Seconds()/ipDur.Seconds(), "fib-ack/ip")
		// CPU time, less sensitive to other tenants' load than wall time:
		// the ip process's, and this whole process's (daemon, client and
		// the poller) until the last FIB ACK.
		b.ReportMetric(ipCPU.Seconds(), "ip-batch-cpu-s")
		b.ReportMetric(kedgeCPU.Seconds(), "kedge-cpu-s")
		b.ReportMetric(kedgeCPU.Seconds()/ipCPU.Seconds(), "cpu-kedge/ip")
		b.ReportMetric(peakMB, "peak-rss-MB")
	}
}
