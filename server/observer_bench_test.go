package server

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// BenchmarkSetWithObserver measures what the observation side costs a
// single-leaf Set (client round trip, durable commit included): two
// daemons side by side, one with the metrics listener, its interceptors
// and the change-feed follower (and a status page open on /events), one
// with --metrics-listen off, Sets alternating between them in rounds so
// that the machine's load falls on both alike. Reported: p50 and p99 of
// each, and the ratio of the p50s.
func BenchmarkSetWithObserver(b *testing.B) {
	on := testConfig(b)
	on.MetricsListen = "127.0.0.1:0"
	dOn, err := Start(on, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer dOn.Shutdown(time.Second)
	dOff, err := Start(testConfig(b), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer dOff.Shutdown(time.Second)
	// A page watching: the follower's summaries go out as events too.
	events := openEvents(b, "http://"+dOn.MetricsAddr()+"/events")
	defer events.Close()

	const rounds, per = 10, 50
	nodes := []struct {
		name string
		cl   gpb.GNMIClient
	}{{"observed", unixClient(b, dOn)}, {"unobserved", unixClient(b, dOff)}}
	level := gp(b, "/kedge/posture/config/level")
	for b.Loop() {
		lat := map[string][]time.Duration{}
		for r := range rounds {
			for _, nd := range nodes {
				for i := range per {
					t0 := time.Now()
					if _, err := nd.cl.Set(b.Context(), &gpb.SetRequest{Update: []*gpb.Update{{Path: level, Val: uval(uint64(1 + (r*per+i)%5))}}}); err != nil {
						b.Fatalf("%s Set: %v", nd.name, err)
					}
					lat[nd.name] = append(lat[nd.name], time.Since(t0))
				}
			}
		}
		p50 := map[string]time.Duration{}
		for name, l := range lat {
			slices.Sort(l)
			p50[name] = l[len(l)/2]
			b.ReportMetric(float64(l[len(l)/2].Microseconds()), name+"-p50-µs")
			b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), name+"-p99-µs")
		}
		b.ReportMetric(float64(p50["observed"])/float64(p50["unobserved"]), "observed/unobserved")
	}
}

// openEvents opens the status page's event stream and reads it until
// closed.
func openEvents(b *testing.B, url string) io.Closer {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	go io.Copy(io.Discard, resp.Body)
	return resp.Body
}
