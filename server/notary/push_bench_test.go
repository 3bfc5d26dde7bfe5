package notary

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// bigPush is what BenchmarkPush1000VLANs10Devices (server/underlay)
// pushes: on each of 10 devices 1,000 VLANs, 4 trunk ports' switched-vlan
// and 100 routed subinterfaces, 11,040 containers in all.
func bigPush(id string) notarymodel.DevicePush {
	p := notarymodel.DevicePush{MutationID: id, QueueSeq: 1, IntentSeq: 2, Time: time.Now(), Proposer: "bench", Tier: "master", Level: 5}
	for d := range 10 {
		dev := fmt.Sprintf("sw%02d", d)
		for v := 1; v <= 1000; v++ {
			p.Changes = append(p.Changes, notarymodel.ContainerChange{Device: dev, Path: fmt.Sprintf("/vlans/vlan[vlan-id=%d]", v),
				After: fmt.Appendf(nil, `{"config":{"name":"vlan%d","status":"ACTIVE","vlan-id":%d},"vlan-id":%d}`, v, v, v)})
		}
		for port := 1; port <= 4; port++ {
			p.Changes = append(p.Changes, notarymodel.ContainerChange{Device: dev,
				Path:  fmt.Sprintf("/interfaces/interface[name=eth%d]/ethernet/switched-vlan", port),
				After: []byte(`{"config":{"interface-mode":"TRUNK","trunk-vlans":[1,2,3]}}`)})
		}
		for v := 10; v <= 1000; v += 10 {
			p.Changes = append(p.Changes, notarymodel.ContainerChange{Device: dev,
				Path:  fmt.Sprintf("/interfaces/interface[name=eth9]/subinterfaces/subinterface[index=%d]", v),
				After: fmt.Appendf(nil, `{"config":{"index":%d},"index":%d,"vlan":{"config":{"vlan-id":%d}}}`, v, v, v)})
		}
	}
	return p
}

// BenchmarkDevicePush times RecordDevicePush until durable: the
// 11,040-container push of 1,000 VLANs to 10 devices at level 5 (listing
// 1,024) and level 1 (listing all), its build alone, a re-offer of it
// (nothing appended), and 500 one-container pushes at level 5 (p50/p99)
// beside the same disk's bare write + fdatasync.
func BenchmarkDevicePush(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		st := openStore(b, b.TempDir())
		n := benchNotary(b, st, nil)
		for _, lvl := range []uint8{5, 1} {
			a, _ := accord.Default(lvl)
			applyAccord(b, n, a)
			p := bigPush(fmt.Sprintf("big-%d", lvl))
			p.Level = lvl
			f := notarymodel.FidelityOf(a, nil)
			start := time.Now()
			notarymodel.BuildDevicePush(p, f)
			build := time.Since(start)
			before := n.Ledger().Bytes()
			start = time.Now()
			if err := n.RecordDevicePush(ctx, p); err != nil {
				b.Fatal(err)
			}
			took := time.Since(start)
			size := n.Ledger().Bytes() - before
			start = time.Now()
			if err := n.RecordDevicePush(ctx, p); err != nil {
				b.Fatal(err)
			}
			again := time.Since(start)
			if n.Ledger().Bytes() != before+size {
				b.Fatal("a re-offer grew the log")
			}
			b.ReportMetric(float64(took.Microseconds())/1000, fmt.Sprintf("ms/big-push-L%d", lvl))
			b.ReportMetric(float64(build.Microseconds())/1000, fmt.Sprintf("ms/big-build-L%d", lvl))
			b.ReportMetric(float64(size)/1024, fmt.Sprintf("KiB/big-entry-L%d", lvl))
			b.ReportMetric(float64(again.Microseconds())/1000, fmt.Sprintf("ms/re-offer-L%d", lvl))
		}
		a, _ := accord.Default(5)
		applyAccord(b, n, a)
		const count = 500
		lat := make([]time.Duration, 0, count)
		for i := range count {
			p := notarymodel.DevicePush{MutationID: "small", QueueSeq: uint64(i + 1), Proposer: "bench", Tier: "operator", Level: 5,
				Changes: []notarymodel.ContainerChange{{Device: "sw1", Path: "/vlans/vlan[vlan-id=10]", After: []byte(`{"vlan-id":10}`)}}}
			start := time.Now()
			if err := n.RecordDevicePush(ctx, p); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		floor := fsyncFloor(b, b.TempDir(), count)
		b.ReportMetric(us(pct(lat, 0.5)), "µs/small-p50")
		b.ReportMetric(us(pct(lat, 0.99)), "µs/small-p99")
		b.ReportMetric(us(pct(floor, 0.5)), "µs/fdatasync-p50")
		b.ReportMetric(us(pct(floor, 0.99)), "µs/fdatasync-p99")
		n.Close()
		st.Close()
	}
}
