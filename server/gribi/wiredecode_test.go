package gribi

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	aftpb "github.com/openconfig/gribi/v1/proto/gribi_aft"
	enums "github.com/openconfig/gribi/v1/proto/gribi_aft/enums"
	spb "github.com/openconfig/gribi/v1/proto/service"
	"github.com/openconfig/gribigo/fluent"
	wpb "github.com/openconfig/ygot/proto/ywrapper"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fluentOps are the operations gribigo's fluent client builds, of every
// entry kind, with their fields each present and absent.
func fluentOps(t testing.TB) []*spb.AFTOperation {
	es := []fluent.GRIBIEntry{
		fluent.IPv4Entry().WithPrefix("10.0.0.0/24").WithNetworkInstance("DEFAULT").WithNextHopGroup(7),
		fluent.IPv4Entry().WithPrefix("10.1.0.0/16").WithNetworkInstance("DEFAULT").WithNextHopGroup(7).
			WithNextHopGroupNetworkInstance("DEFAULT").WithMetadata([]byte{1, 2, 3}).WithElectionID(5, 1),
		fluent.IPv4Entry().WithPrefix("10.2.0.0/16").WithNetworkInstance("VRF-A").WithNextHopGroupNetworkInstance("VRF-B"),
		fluent.IPv4Entry().WithPrefix("not a prefix"),
		fluent.IPv4Entry(),
		fluent.IPv6Entry().WithPrefix("2001:db8::/64").WithNetworkInstance("DEFAULT").WithNextHopGroup(9).WithMetadata([]byte("m")),
		fluent.IPv6Entry().WithPrefix("2001:db8:1::/48").WithNextHopGroupNetworkInstance("DEFAULT").WithElectionID(0, 2),
		fluent.NextHopGroupEntry().WithID(7).WithNetworkInstance("DEFAULT").AddNextHop(2, 3).AddNextHop(1, 1).WithBackupNHG(8),
		fluent.NextHopGroupEntry().WithID(8).AddNextHop(1, 0).AddNextHop(1, 5),
		fluent.NextHopGroupEntry().WithID(9),
		fluent.NextHopEntry().WithIndex(1).WithNetworkInstance("DEFAULT").WithIPAddress("192.0.2.1"),
		fluent.NextHopEntry().WithIndex(2).WithInterfaceRef("eth0").WithIPAddress("2001:db8::1"),
		fluent.NextHopEntry().WithIndex(3).WithSubinterfaceRef("eth0", 1).WithMacAddress("00:11:22:33:44:55"),
		fluent.NextHopEntry().WithIndex(4).WithIPinIP("192.0.2.1", "192.0.2.2").WithNextHopNetworkInstance("VRF"),
		fluent.NextHopEntry().WithIndex(5).WithPopTopLabel().WithPushedLabelStack(100, 200),
		fluent.NextHopEntry().WithIndex(6).WithDecapsulateHeader(fluent.IPinIP).WithEncapsulateHeader(fluent.MPLS),
		fluent.NextHopEntry().WithIndex(7).WithInterfaceRef("bad name!"),
		fluent.NextHopEntry(),
		fluent.LabelEntry().WithLabel(100).WithNetworkInstance("DEFAULT").WithNextHopGroup(7),
	}
	var ops []*spb.AFTOperation
	for i, e := range es {
		o, err := e.OpProto()
		if err != nil {
			t.Fatalf("build operation %d: %v", i, err)
		}
		for _, v := range []spb.AFTOperation_Operation{spb.AFTOperation_ADD, spb.AFTOperation_REPLACE, spb.AFTOperation_DELETE, spb.AFTOperation_INVALID, 7} {
			o := proto.Clone(o).(*spb.AFTOperation)
			o.Id, o.Op = uint64(i+1), v
			if o.ElectionId == nil && i%2 == 0 {
				o.ElectionId = &spb.Uint128{Low: 1}
			}
			ops = append(ops, o)
		}
	}
	return append(ops,
		&spb.AFTOperation{Id: 1 << 40, Op: spb.AFTOperation_ADD, NetworkInstance: "DEFAULT", ElectionId: &spb.Uint128{},
			Entry: &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: "10.0.0.1/32",
				Ipv4Entry: &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{}, EntryMetadata: &wpb.BytesValue{},
					DecapsulateHeader: enums.OpenconfigAftTypesEncapsulationHeaderType_OPENCONFIGAFTTYPESENCAPSULATIONHEADERTYPE_GRE}}}},
		&spb.AFTOperation{Id: 2, Op: spb.AFTOperation_REPLACE, NetworkInstance: "DEFAULT", ElectionId: &spb.Uint128{},
			Entry: &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: "10.0.0.2/32", Ipv4Entry: &aftpb.Afts_Ipv4Entry{}}}},
		&spb.AFTOperation{Op: spb.AFTOperation_ADD, Entry: &spb.AFTOperation_Ipv6{Ipv6: &aftpb.Afts_Ipv6EntryKey{}}},
		&spb.AFTOperation{Op: spb.AFTOperation_ADD, Entry: &spb.AFTOperation_NextHopGroup{NextHopGroup: &aftpb.Afts_NextHopGroupKey{
			NextHopGroup: &aftpb.Afts_NextHopGroup{Color: &wpb.UintValue{Value: 1}}}}},
		&spb.AFTOperation{Op: spb.AFTOperation_DELETE},
	)
}

// seedRequests are requests as clients send them: operations alone and
// in batches, parameters, election ids, and a few deformed on purpose.
func seedRequests(t testing.TB) [][]byte {
	ops := fluentOps(t)
	reqs := []*spb.ModifyRequest{
		{Operation: ops},
		{},
		{Params: &spb.SessionParameters{Redundancy: spb.SessionParameters_SINGLE_PRIMARY, AckType: spb.SessionParameters_RIB_AND_FIB_ACK}},
		{ElectionId: &spb.Uint128{High: 1, Low: 2}},
		{ElectionId: &spb.Uint128{Low: 2}, Operation: ops[:1]},
	}
	for _, o := range ops {
		reqs = append(reqs, &spb.ModifyRequest{Operation: []*spb.AFTOperation{o}})
	}
	var out [][]byte
	for _, r := range reqs {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		out = append(out, b)
	}
	one := out[len(out)-len(ops)]
	out = append(out,
		one[:len(one)-1], // truncated
		append(append([]byte(nil), one...), one...),                                  // two operations
		protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3), // wrong wire type
		append(append([]byte(nil), one...), 0xd0, 0x02, 0x01),                        // unknown field 42
		[]byte{0x0a, 0x03, 0x12, 0x01, 0xff},                                         // invalid UTF-8 network instance
		[]byte{0x0a, 0x04, 0x08, 0x01, 0x08, 0x02},                                   // repeated id (last wins)
	)
	// Prefixes the fast decoder parses before it checks their UTF-8: one
	// that is not UTF-8 (proto.Unmarshal refuses the request), one that
	// is but does not parse (the RIB fails it), one that parses; and
	// network instances other than the default, not UTF-8 and UTF-8. (The
	// bytes are spliced in after marshalling, which refuses invalid UTF-8,
	// each as long as what it replaces.)
	for _, r := range [][2]string{{"\xff1", "DEFAULT"}, {"\u00e9", "DEFAULT"}, {"11", "DEFAULT"}, {"11", "VRF-\xffAB"}, {"11", "VRF-\u00e9A"}} {
		b, err := proto.Marshal(&spb.ModifyRequest{Operation: []*spb.AFTOperation{{Id: 1, Op: spb.AFTOperation_ADD, NetworkInstance: "DEFAULT",
			Entry: &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: "10.0.0.XX/32",
				Ipv4Entry: &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{Value: 1}}}}}}})
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		b = bytes.Replace(b, []byte("XX"), []byte(r[0]), 1)
		out = append(out, bytes.Replace(b, []byte("DEFAULT"), []byte(r[1]), 1))
	}
	return out
}

// viaProto is what the session read before the wire decoder:
// proto.Unmarshal, then opOf for each operation.
func viaProto(b []byte) (*modifyIn, error) {
	r := new(spb.ModifyRequest)
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, err
	}
	m := &modifyIn{session: "s-1"}
	m.fromProto(r)
	return m, nil
}

// sameRead reports how the wire decoder's reading of b differs from
// viaProto's, "" when it does not.
func sameRead(b []byte) string {
	want, werr := viaProto(b)
	got := &modifyIn{session: "s-1"}
	gerr := got.UnmarshalWire(b)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		return fmt.Sprintf("error %v, proto.Unmarshal's %v", gerr, werr)
	}
	if werr != nil {
		return ""
	}
	if !proto.Equal(got.params, want.params) || !proto.Equal(got.elec, want.elec) ||
		(got.params == nil) != (want.params == nil) || (got.elec == nil) != (want.elec == nil) {
		return fmt.Sprintf("params %v election %v, want %v %v", got.params, got.elec, want.params, want.elec)
	}
	if len(got.ops) != len(want.ops) {
		return fmt.Sprintf("%d operations, want %d", len(got.ops), len(want.ops))
	}
	for i := range got.ops {
		g, w := got.ops[i], want.ops[i]
		if fmt.Sprint(g.err) != fmt.Sprint(w.err) {
			return fmt.Sprintf("operation %d: error %v, want %v", i, g.err, w.err)
		}
		g.err, w.err = nil, nil
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("operation %d: %+v %+v, want %+v %+v", i, g, *g.op, w, *w.op)
		}
	}
	return ""
}

func TestUnmarshalWireMatchesProto(t *testing.T) {
	for i, b := range seedRequests(t) {
		if d := sameRead(b); d != "" {
			t.Errorf("request %d (%x): %s", i, b, d)
		}
	}
}

// TestUnmarshalWireFastPath checks that the operations a bulk load sends
// are read by the wire decoder itself, not handed to proto.Unmarshal.
func TestUnmarshalWireFastPath(t *testing.T) {
	for _, o := range fluentOps(t) {
		b, err := proto.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var in inOp
		fast := decodeOp(b, "s-1", &in)
		_, ipv4 := o.GetEntry().(*spb.AFTOperation_Ipv4)
		_, nhg := o.GetEntry().(*spb.AFTOperation_NextHopGroup)
		known := o.GetOp() >= spb.AFTOperation_ADD && o.GetOp() <= spb.AFTOperation_DELETE &&
			(ipv4 && o.GetIpv4().GetIpv4Entry().GetDecapsulateHeader() == 0 || nhg && o.GetNextHopGroup().GetNextHopGroup().GetColor() == nil)
		if known && !fast {
			t.Errorf("operation %v went to proto.Unmarshal", o)
		}
	}
}

func FuzzUnmarshalWire(f *testing.F) {
	for _, b := range seedRequests(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if d := sameRead(b); d != "" {
			t.Errorf("%x: %s", b, d)
		}
	})
}
