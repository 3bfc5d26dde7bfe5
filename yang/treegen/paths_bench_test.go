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

var valSink *gpb.TypedValue

// BenchmarkLeafVals encodes the values the gRIBI writer and the route
// applier write for one IPv4 entry (three config leaves, its status).
func BenchmarkLeafVals(b *testing.B) {
	e := kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4Entry("10.1.2.3/32")
	pfx, nhg, sess, st := e.Config().Prefix(), e.Config().NextHopGroup(), e.Config().Session(), e.State().Status()
	b.ReportAllocs()
	for b.Loop() {
		valSink = pfx.Val("10.1.2.3/32")
		valSink = nhg.Val(1)
		valSink = sess.Val("s1")
		valSink = st.Val(kedgepath.AftStatusInstalled)
	}
}
