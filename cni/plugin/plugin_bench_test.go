package plugin_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/guildhouse-co/kedge/cni/internal/testdaemon"
)

// BenchmarkAddDel measures ADD and DEL latency of kedge-cni over 100
// sequential pods, each in its own netns, side by side with the reference
// bridge + host-local plugins in the same run: pod i goes through kedge
// and the reference back to back (alternating which goes first), so both see the same machine noise. Both are
// exec'd the same way (env + stdin), as a runtime does. Everything runs
// in a throwaway "host" netns so the bridge plugin's gateway sysctls never
// touch the real host. One iteration does the whole workload (-benchtime
// 1x); the metrics are the percentiles.
func BenchmarkAddDel(b *testing.B) {
	needRoot(b)
	ref := buildTool(b, "bridge", "github.com/containernetworking/plugins/plugins/main/bridge")
	buildTool(b, "host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local")
	const nPods = 100
	for b.Loop() {
		d := testdaemon.Start(b, true)
		kconf := netConf(b, "1.1.0", d.Socket, map[string]any{"subnet": "10.71.0.0/24"})
		rconf := mustMarshal(b, map[string]any{"cniVersion": "1.1.0", "name": "refnet", "type": "bridge",
			"bridge": "cnibr" + suffix(), "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(b.TempDir(), "ipam"),
				"ranges": [][]map[string]string{{{"subnet": "10.72.0.0/24"}}}}})
		hostNS := newNS(b)
		kns, rns := make([]string, nPods), make([]string, nPods)
		for i := range nPods {
			kns[i], rns[i] = newNS(b), newNS(b)
		}
		var kAdd, rAdd, kDel, rDel []time.Duration
		cpu := map[string][]time.Duration{}
		err := inNetns(hostNS, func() error {
			timed := func(bin string, inv invocation, conf []byte) (time.Duration, error) {
				start := time.Now()
				r := runCNI(b, bin, inv, conf)
				el := time.Since(start)
				if inv.cmd == "ADD" {
					cpu[bin] = append(cpu[bin], r.cpu)
				}
				if r.code != 0 {
					return 0, fmt.Errorf("%s %s: exit %d %s %s", filepath.Base(bin), inv.cmd, r.code, r.stdout, r.stderr)
				}
				return el, nil
			}
			// pair runs pod i through both plugins, alternating which goes
			// first so neither always inherits the other's cache state.
			pair := func(verb string, i int, k, r *[]time.Duration) error {
				cid := fmt.Sprintf("cniplugin-bench-%d", i)
				kedge := func() error {
					el, err := timed(kedgeBin(), invocation{cmd: verb, containerID: cid, netns: kns[i], ifname: "eth0"}, kconf)
					*k = append(*k, el)
					return err
				}
				refer := func() error {
					el, err := timed(ref, invocation{cmd: verb, containerID: cid, netns: rns[i], ifname: "eth0"}, rconf)
					*r = append(*r, el)
					return err
				}
				if i%2 == 1 {
					kedge, refer = refer, kedge
				}
				if err := kedge(); err != nil {
					return err
				}
				return refer()
			}
			for i := range nPods {
				if err := pair("ADD", i, &kAdd, &rAdd); err != nil {
					return err
				}
			}
			for i := range nPods {
				if err := pair("DEL", i, &kDel, &rDel); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if ps := pods(b, d.Socket); len(ps) != 0 {
			b.Fatalf("%d registrations left after DEL", len(ps))
		}
		report := func(name string, k, r []time.Duration) {
			kp50, kp99, rp50, rp99 := pct(k, 50), pct(k, 99), pct(r, 50), pct(r, 99)
			b.ReportMetric(ms(kp50), "kedge_"+name+"_p50_ms")
			b.ReportMetric(ms(kp99), "kedge_"+name+"_p99_ms")
			b.ReportMetric(ms(rp50), "ref_"+name+"_p50_ms")
			b.ReportMetric(ms(rp99), "ref_"+name+"_p99_ms")
			b.ReportMetric(ms(kp50)/ms(rp50), name+"_p50_ratio")
			b.ReportMetric(ms(kp99)/ms(rp99), name+"_p99_ratio")
		}
		// CPU time is far less sensitive to the machine's load than wall
		// time: the plugin's own cost, its IPAM child included.
		b.ReportMetric(ms(pct(cpu[kedgeBin()], 50)), "kedge_add_cpu_p50_ms")
		b.ReportMetric(ms(pct(cpu[ref], 50)), "ref_add_cpu_p50_ms")
		report("add", kAdd, rAdd)
		report("del", kDel, rDel)
	}
}

// inNetns runs fn on an OS thread switched into the netns at path; the
// children fn execs are forked from that thread and so start there. The
// thread is never unlocked, so the runtime discards it afterwards.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	return mustJSONBytes(t, v)
}
