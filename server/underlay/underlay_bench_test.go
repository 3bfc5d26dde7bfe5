package underlay

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

const (
	benchDevices = 10
	benchVLANs   = 1000
	benchPorts   = 4 // trunk ports per device carrying every VLAN
)

func benchEnv(b *testing.B, onChange bool) *env {
	var specs []devSpec
	for i := range benchDevices {
		specs = append(specs, devSpec{name: fmt.Sprintf("sw%02d", i), commitConfirmed: true, onChange: onChange})
	}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	e := newEnv(b, specs, Options{Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), RPCTimeout: 5 * time.Minute})
	e.wait = 10 * time.Minute // the machine is shared: a loaded run is slow, not wrong
	return e
}

// bigIntent writes benchVLANs VLANs, each tagged on benchPorts ports of
// every device, and every tenth with a routed subinterface per device.
func (e *env) bigIntent(b *testing.B) {
	var vs []string
	for id := 1; id <= benchVLANs; id++ {
		var ms, ss []string
		for d := range benchDevices {
			dev := fmt.Sprintf("sw%02d", d)
			for p := 1; p <= benchPorts; p++ {
				ms = append(ms, fmt.Sprintf(`{"device":%q,"port":"eth%d","config":{"device":%q,"port":"eth%d"}}`, dev, p, dev, p))
			}
			if id%10 == 0 {
				ss = append(ss, fmt.Sprintf(`{"device":%q,"port":"eth9","config":{"device":%q,"port":"eth9","addresses":["10.%d.%d.1/24"]}}`,
					dev, dev, id/256, id%256))
			}
		}
		vs = append(vs, fmt.Sprintf(`{"id":%d,"config":{"id":%d,"name":"vlan%d"},"members":{"member":[%s]},"subinterfaces":{"subinterface":[%s]}}`,
			id, id, id, strings.Join(ms, ","), strings.Join(ss, ",")))
	}
	e.set("/kedge/underlay/vlans", `{"vlan":[`+strings.Join(vs, ",")+`]}`)
}

// BenchmarkPush1000VLANs10Devices: 1,000 VLANs (4 trunk ports per device,
// 100 routed subinterfaces) compiled for 10 commit-confirmed devices and
// pushed, from the proposal's commit until every device confirmed; the
// pure compile of the same intent is reported beside it.
func BenchmarkPush1000VLANs10Devices(b *testing.B) {
	for range b.N {
		e := benchEnv(b, true)
		e.level(5)
		e.bigIntent(b)

		var in mu.Intent
		_ = e.st.Read(func(t *tree.Tree) error { in, _ = mu.FromTree(t); return nil })
		start := time.Now()
		for _, d := range in.Devices {
			var vs []mu.VLAN
			for _, v := range in.VLANs {
				if on, ok := v.On(d.Name); ok {
					vs = append(vs, on)
				}
			}
			if _, err := mu.Compile(d.Name, vs); err != nil {
				b.Fatal(err)
			}
		}
		compile := time.Since(start)

		start = time.Now()
		e.propose("all", "operator", nil, "")
		e.waitStatus("all", "executed")
		push := time.Since(start)
		var devSet []time.Duration
		for n, d := range e.devs {
			if len(d.Config().Vlan) != benchVLANs {
				b.Fatalf("%s holds %d VLANs", n, len(d.Config().Vlan))
			}
			devSet = append(devSet, d.Stats().SetTime)
		}
		slices.Sort(devSet)
		b.ReportMetric(float64(devSet[len(devSet)/2].Milliseconds()), "ms-device-set-p50")
		b.ReportMetric(float64(compile.Milliseconds()), "ms-compile-10-devices")
		b.ReportMetric(float64(push.Milliseconds()), "ms-propose-to-all-confirmed")
		b.ReportMetric(float64(len(e.devs)), "devices")
	}
}

// BenchmarkDriftDetection: the time from a change behind Kedge's back
// (one VLAN renamed on one of 10 devices holding 1,000 VLANs) until the
// drift is in /kedge/underlay state, at levels 5 and 4 (reporting only,
// so no repair interferes), for devices watched with ON_CHANGE and for
// polled devices. Polling uses the accords' intervals scaled down 10×
// (3 s at 5, 1 s at 4), so the run stays short. Each change follows the
// check that cleared the previous one, so a polled device's latency is
// close to its worst case, one interval.
func BenchmarkDriftDetection(b *testing.B) {
	for range b.N {
		for _, mode := range []struct {
			name     string
			onChange bool
			samples  int
		}{{"on-change", true, 20}, {"poll", false, 10}} {
			e := benchEnv(b, mode.onChange)
			e.level(5)
			e.bigIntent(b)
			e.propose("all", "operator", nil, "")
			e.waitStatus("all", "executed")
			for _, level := range []uint8{5, 4} {
				a, _ := accord.Default(level)
				a.UnderlayDriftMillis /= 10
				// Report, do not repair, so every sample starts in sync.
				a.UnderlayMutationTiers = []string{accord.TierMaster}
				e.accord(a)
				var lat, watcher []time.Duration
				for i := range mode.samples {
					dev := fmt.Sprintf("sw%02d", i%benchDevices)
					name := fmt.Sprintf("drift-%d-%d", level, i)
					start := time.Now()
					if err := e.devs[dev].Mutate(func(c *oc.Device) { c.GetVlan(uint16(1 + i)).Name = ygot.String(name) }); err != nil {
						b.Fatal(err)
					}
					e.waitFor("drift seen", func(t *tree.Tree) bool {
						return strings.Contains(leaf(t, dstate(dev, "drift-paths")), fmt.Sprintf("vlan-id=%d]", 1+i))
					})
					lat = append(lat, time.Since(start))
					if mode.onChange {
						watcher = append(watcher, time.Since(e.devs[dev].Published()))
					}
					// Put it back by hand and wait until the drift clears.
					if err := e.devs[dev].Mutate(func(c *oc.Device) { c.GetVlan(uint16(1 + i)).Name = ygot.String(fmt.Sprintf("vlan%d", 1+i)) }); err != nil {
						b.Fatal(err)
					}
					e.waitFor("drift cleared", func(t *tree.Tree) bool { return leaf(t, dstate(dev, "drift")) == "false" })
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, fmt.Sprintf("ms-%s-level%d-p50", mode.name, level))
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1e3, fmt.Sprintf("ms-%s-level%d-max", mode.name, level))
				if len(watcher) > 0 {
					// From the device's notification to the drift in state:
					// Kedge's share (the rest is the test device computing
					// its notification, a whole-tree diff).
					slices.Sort(watcher)
					b.ReportMetric(float64(watcher[len(watcher)/2].Microseconds())/1e3, fmt.Sprintf("ms-%s-level%d-kedge-p50", mode.name, level))
				}
			}
			e.c.Close()
		}
	}
}

// BenchmarkTransition5to1: the underlay step of a 5→1 transition with 10
// devices holding 1,000 VLANs: idle, and with a 1,000-VLAN change in
// flight to all 10 devices (their commits pending confirmation, which the
// step must cancel); then the 1→5 step, which lets the change execute
// again (until all confirmed). Seed budget for the underlay: 10 s.
func BenchmarkTransition5to1(b *testing.B) {
	for range b.N {
		e := benchEnv(b, true)
		e.level(5)
		e.bigIntent(b)
		e.propose("base", "operator", nil, "")
		e.waitStatus("base", "executed")

		start := time.Now()
		e.level(1)
		idle := time.Since(start)
		e.level(5)

		// A change to every VLAN (renamed) in flight: the devices take the
		// Set and never confirm until the step cancels it.
		e.set("/kedge/underlay/vlans", renameAll())
		for _, d := range e.devs {
			d.SetFault(faultHang)
		}
		e.propose("rename", "operator", nil, "")
		for _, d := range e.devs {
			if err := d.WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(1).GetName() == "renamed1" }); err != nil {
				b.Fatal(err)
			}
		}
		start = time.Now()
		e.level(1)
		busy := time.Since(start)
		for n, d := range e.devs {
			if d.Pending() || d.Config().GetVlan(1).GetName() != "vlan1" {
				b.Fatalf("%s not rolled back by the 5→1 step", n)
			}
		}
		for _, d := range e.devs {
			d.SetFault(faultNone)
		}
		start = time.Now()
		e.level(5)
		up := time.Since(start)
		e.waitStatus("rename", "executed")
		upDone := time.Since(start)
		b.ReportMetric(float64(idle.Microseconds())/1e3, "ms-5to1-idle")
		b.ReportMetric(float64(busy.Microseconds())/1e3, "ms-5to1-10-pushes-in-flight")
		b.ReportMetric(float64(up.Microseconds())/1e3, "ms-1to5-step")
		b.ReportMetric(float64(upDone.Milliseconds()), "ms-1to5-until-change-confirmed")
	}
}

func renameAll() string {
	var vs []string
	for id := 1; id <= benchVLANs; id++ {
		vs = append(vs, fmt.Sprintf(`{"id":%d,"config":{"id":%d,"name":"renamed%d"}}`, id, id, id))
	}
	return `{"vlan":[` + strings.Join(vs, ",") + `]}`
}
