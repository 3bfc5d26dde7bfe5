package server

import (
	"slices"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// BenchmarkSetByIdentityPath measures single-leaf Set latency (client
// round trip, durable commit included) through two identity paths of one
// running daemon, side by side: the unix socket (peer credentials, no
// TLS) and TCP+TLS with username/password metadata (after the first RPC
// the password check is a cache hit; auth.BenchmarkPasswordCheck
// measures argon2 itself).
func BenchmarkSetByIdentityPath(b *testing.B) {
	d, err := Start(testConfig(b), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(time.Second)
	const n = 300
	paths := []struct {
		name string
		cl   gpb.GNMIClient
		user string
	}{
		{"unix", unixClient(b, d), ""},
		{"tls-password", tlsClient(b, d, nil), "master"},
	}
	level := gp(b, "/kedge/posture/config/level")
	for b.Loop() {
		p50 := map[string]time.Duration{}
		for _, p := range paths {
			ctx := ctxAs(b, p.user, masterPW)
			lat := make([]time.Duration, 0, n)
			for i := range n {
				t0 := time.Now()
				_, err := p.cl.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: level, Val: uval(uint64(1 + i%5))}}})
				if err != nil {
					b.Fatalf("%s Set: %v", p.name, err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			p50[p.name] = lat[n/2]
			b.ReportMetric(float64(lat[n/2].Microseconds()), p.name+"-p50-µs")
			b.ReportMetric(float64(lat[n*99/100].Microseconds()), p.name+"-p99-µs")
		}
		b.ReportMetric(float64(p50["tls-password"])/float64(p50["unix"]), "tls-password/unix")
	}
}
