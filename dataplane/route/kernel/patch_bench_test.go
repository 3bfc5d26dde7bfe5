package kernel_test

import (
	"context"
	"testing"

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
	b.ResetTimer()
	for range b.N {
		if err := be.Patch(ctx, route.Patch{Put: routes}); err != nil {
			b.Fatalf("patch: %v", err)
		}
		b.StopTimer()
		if err := be.Patch(ctx, route.Patch{Del: routes}); err != nil {
			b.Fatalf("delete: %v", err)
		}
		b.StartTimer()
	}
}
