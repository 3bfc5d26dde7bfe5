package treegen_test

import (
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
)

var sink []*gpb.PathElem

// BenchmarkPathElems builds the paths the gRIBI writer and the route
// applier name for one IPv4 entry (its entry, three config leaves, its
// status) and takes each leaf's Elems, as store.Update does: what a typed
// path costs per entry.
func BenchmarkPathElems(b *testing.B) {
	aft := kedgepath.Root().Kedge().Aft()
	b.ReportAllocs()
	for b.Loop() {
		e := aft.Ipv4Entries().Ipv4Entry("10.1.2.3/32")
		c := e.Config()
		sink = e.Elems()
		sink = c.Prefix().Elems()
		sink = c.NextHopGroup().Elems()
		sink = c.Session().Elems()
		sink = e.State().Status().Elems()
	}
}
