package gribi

import (
	spb "github.com/openconfig/gribi/v1/proto/service"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/models/aft"
)

// inOp is an operation as the session checks it: where the wire placed
// it (network instance, election id, next-hop-group instance) and its
// conversion, or why it has none. It comes either from a generated
// AFTOperation (opOf) or straight from the wire (decodeOp).
type inOp struct {
	id    uint64
	ni    string
	elec  uint128
	nhgNI string
	// hasElec: the operation carried an election id (zero or not).
	hasElec bool
	// op is allocated on its own: the RIB holds an added entry as its
	// op's Entry (aft.RIB.Apply), and one slab for the request would stay
	// alive as long as any of its entries did.
	op  *aft.Op
	err error // toOp's
}

// opOf reads a generated operation.
func opOf(o *spb.AFTOperation, session string) inOp {
	in := inOp{id: o.GetId(), ni: o.GetNetworkInstance(), elec: u128(o.GetElectionId()),
		nhgNI: ipNHGInstance(o), hasElec: o.GetElectionId() != nil, op: new(aft.Op)}
	in.err = toOp(o, session, in.op)
	return in
}

// modifyIn is one ModifyRequest received: its parameters or election id
// (kept as their generated messages, one per session) or its
// operations, converted.
type modifyIn struct {
	session string
	params  *spb.SessionParameters
	elec    *spb.Uint128
	ops     []inOp
}

// fromProto fills m from a generated request.
func (m *modifyIn) fromProto(r *spb.ModifyRequest) {
	m.params, m.elec, m.ops = r.GetParams(), r.GetElectionId(), nil
	if len(r.GetOperation()) > 0 {
		m.ops = make([]inOp, len(r.GetOperation()))
		for i, o := range r.GetOperation() {
			m.ops[i] = opOf(o, m.session)
		}
	}
}

// UnmarshalWire decodes a request from its wire bytes (the gNMI target's
// codec hands them over, see target.WireDecoder). Operations the fast
// decoder reads completely skip the generated messages; anything else it
// meets (parameters, an election id, a field it does not handle, a
// repeated singular field, malformed bytes) is unmarshalled by
// proto.Unmarshal, the operation alone or the whole request, so the
// result and the errors are exactly those of proto.Unmarshal and opOf.
func (m *modifyIn) UnmarshalWire(b []byte) error {
	m.params, m.elec, m.ops = nil, nil, nil
	if m.decodeOps(b) {
		return nil
	}
	r := new(spb.ModifyRequest)
	if err := proto.Unmarshal(b, r); err != nil {
		return err
	}
	m.fromProto(r)
	return nil
}
