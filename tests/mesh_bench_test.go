package tests

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkMeshPosture20Peers runs 21 kedge-daemons in 21 namespaces: a
// hub with 20 peers, each peer with the hub only, configured through
// gNMI. Each cycle sets the hub to level 1 and measures until its device
// has no peer (teardown, after the DRAINs) and until every peer has taken
// the hub off its own device (peers-down: the DRAIN reached them; a peer
// keeps the hub meshAckGrace, 200 ms, for the acknowledgements), then
// sets level 5 plus each peer's reconnect signal and measures until all
// 20 tunnels have a handshake newer than the Set (restore). Metrics are
// the median and worst of the cycles, in ms; -benchtime 1x runs them all
// in one iteration.
func BenchmarkMeshPosture20Peers(b *testing.B) {
	const peers, cycles = 20, 5
	l := newMeshLab(b, peers+1)
	hub := l.nodes[0]
	l.configure(b, nil, func(a, c int) bool { return a == 0 || c == 0 })
	allUp := func(after time.Time) bool {
		dev, err := l.wg.Device(hub.iface)
		if err != nil || len(dev.Peers) != peers {
			return false
		}
		for _, p := range dev.Peers {
			if !p.LastHandshakeTime.After(after) {
				return false
			}
		}
		return true
	}
	meshWait(b, "hub's 20 tunnels up", 60*time.Second, func() bool { return allUp(time.Time{}) })
	hubGone := func() bool {
		for _, nd := range l.nodes[1:] {
			if len(l.devicePeers(b, nd)) != 0 {
				return false
			}
		}
		return true
	}
	var down, gone, up []float64
	for b.Loop() {
		for range cycles {
			start := time.Now()
			setMeshLevel(b, hub.c, 1)
			meshWait(b, "hub's device empty", 5*time.Second, func() bool { return len(l.devicePeers(b, hub)) == 0 })
			down = append(down, meshMS(time.Since(start)))
			meshWait(b, "every peer dropped the hub", 5*time.Second, hubGone)
			gone = append(gone, meshMS(time.Since(start)))

			start = time.Now()
			setMeshLevel(b, hub.c, 5)
			var wg sync.WaitGroup
			for _, nd := range l.nodes[1:] {
				wg.Go(func() { meshReconnect(b, nd, hub.name) })
			}
			wg.Wait()
			if !meshWaitFor(30*time.Second, func() bool { return allUp(start) }) {
				dev, _ := l.wg.Device(hub.iface)
				for _, p := range dev.Peers {
					b.Logf("hub peer %s handshake %v", p.PublicKey, p.LastHandshakeTime.Sub(start))
				}
				for _, nd := range l.nodes[1:] {
					b.Logf("%s: pub %s device peers %d state %v", nd.name, nd.pub, len(l.devicePeers(b, nd)), nd.peerState(b, hub.name))
				}
				b.Fatal("hub's tunnels not back")
			}
			up = append(up, meshMS(time.Since(start)))
		}
	}
	for name, xs := range map[string][]float64{"teardown": down, "peers-down": gone, "restore": up} {
		slices.Sort(xs)
		b.ReportMetric(xs[len(xs)/2], name+"-p50-ms")
		b.ReportMetric(xs[len(xs)-1], name+"-max-ms")
	}
}

func meshMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func meshWaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
