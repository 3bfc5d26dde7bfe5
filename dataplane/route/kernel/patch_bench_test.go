package kernel_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// BenchmarkPatchBulk times one Patch putting 72,000 new routes in key
// order (the last batch of a gRIBI bulk load, as the routes intent lists
// it) into a backend holding none; the routes are deleted again, untimed,
// between rounds. Its B/op is the backend's side of the load's
// allocations; its time is mostly the kernel's.
func BenchmarkPatchBulk(b *testing.B) { benchPatchBulk(b, true) }

// BenchmarkPatchBulkGatewayOnly is BenchmarkPatchBulk with routes given
// only their gateway, as gRIBI's are: the kernel resolves their device,
// which the backend learns (resolve.go).
func BenchmarkPatchBulkGatewayOnly(b *testing.B) { benchPatchBulk(b, false) }

func benchPatchBulk(b *testing.B, named bool) {
	requireRoot(b)
	n := newTestNet(b)
	be := newBackend(b, n.NS)
	ctx := context.Background()
	if err := be.Set(ctx, route.Config{}); err != nil {
		b.Fatalf("set: %v", err)
	}
	dev := ""
	if named {
		dev = n.Dev
	}
	routes := manyRoutes(72_000, dev)
	// The process's user CPU in the Patches: the backend's own work,
	// apart from the kernel's (system time), which is most of the wall
	// time and as noisy.
	var user time.Duration
	b.ResetTimer()
	for range b.N {
		start := userTime(b)
		if err := be.Patch(ctx, route.Patch{Put: routes}); err != nil {
			b.Fatalf("patch: %v", err)
		}
		user += userTime(b) - start
		b.StopTimer()
		if err := be.Patch(ctx, route.Patch{Del: routes}); err != nil {
			b.Fatalf("delete: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(user.Microseconds())/1000/float64(b.N), "user-cpu-ms/op")
}

// userTime is the process's user CPU time so far.
func userTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano())
}
