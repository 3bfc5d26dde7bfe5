package gribi

import (
	"net/netip"
	"testing"

	aftpb "github.com/openconfig/gribi/v1/proto/gribi_aft"
	spb "github.com/openconfig/gribi/v1/proto/service"
	wpb "github.com/openconfig/ygot/proto/ywrapper"
	"google.golang.org/protobuf/proto"
)

// bulkRequest is a ModifyRequest of n IPv4 ADDs as a bulk load sends
// them (network instance, election id, prefix, group).
func bulkRequest(b *testing.B, n int) []byte {
	r := &spb.ModifyRequest{}
	a := netip.MustParseAddr("10.128.0.1")
	for i := range n {
		r.Operation = append(r.Operation, &spb.AFTOperation{Id: uint64(i + 1), NetworkInstance: DefaultNetworkInstance,
			Op: spb.AFTOperation_ADD, ElectionId: &spb.Uint128{Low: 1},
			Entry: &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: netip.PrefixFrom(a, 32).String(),
				Ipv4Entry: &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{Value: 1}}}}})
		a = a.Next()
	}
	wire, err := proto.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

// BenchmarkDecodeModify: a 1,000-operation request read into the RIB's
// operations, by proto.Unmarshal and opOf (before) and by the wire
// decoder (UnmarshalWire).
func BenchmarkDecodeModify(b *testing.B) {
	wire := bulkRequest(b, 1000)
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := &modifyIn{session: "s-1"}
			r := new(spb.ModifyRequest)
			if err := proto.Unmarshal(wire, r); err != nil {
				b.Fatal(err)
			}
			m.fromProto(r)
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := &modifyIn{session: "s-1"}
			if err := m.UnmarshalWire(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAnswers: 1,000 RIB acknowledgements of one session as a
// ModifyResponse's bytes, through generated results and proto.Marshal
// (before) and written directly (answers).
func BenchmarkAnswers(b *testing.B) {
	ss := &session{id: "s-1"}
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rs := make([]spb.AFTResult, 1000)
			m := &spb.ModifyResponse{Result: make([]*spb.AFTResult, 0, len(rs))}
			for i := range rs {
				rs[i].Id, rs[i].Status = uint64(i+1), spb.AFTResult_RIB_PROGRAMMED
				m.Result = append(m.Result, &rs[i])
			}
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ans := newAnswers(1000)
			for i := range 1000 {
				ans.add(ss, uint64(i+1), spb.AFTResult_RIB_PROGRAMMED)
			}
			_ = ans.resp[ss].WireBytes()
		}
	})
}
