package gribi

import (
	"net/netip"
	"unicode/utf8"
	"unsafe"

	spb "github.com/openconfig/gribi/v1/proto/service"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/models/aft"
)

// Field numbers the fast decoder reads (gribi.proto, gribi_aft.proto,
// ywrapper.proto). Any other field sends the message to proto.Unmarshal.
const (
	fReqOperation = 1

	fOpID       = 1
	fOpNI       = 2
	fOpOp       = 3
	fOpIPv4     = 4
	fOpIPv6     = 5
	fOpNHG      = 7
	fOpElection = 11

	fU128High = 1
	fU128Low  = 2

	fKeyPrefix = 1 // Ipv4EntryKey, Ipv6EntryKey
	fKeyEntry  = 2

	fIPv4NHG      = 497198611
	fIPv4Metadata = 290934374
	fIPv4NHGNI    = 32856574
	fIPv6NHG      = 442121607
	fIPv6Metadata = 11794282
	fIPv6NHGNI    = 492017618

	fNHGKeyID     = 1
	fNHGKeyGroup  = 2
	fNHGBackup    = 366506898
	fNHGNextHop   = 211071474
	fNHGMemberIdx = 1
	fNHGMemberNH  = 2
	fNHGWeight    = 202140175

	fWrapperValue = 1
)

// decodeOps reads a request made of operations only. It returns false
// when the request is anything else or is malformed: the caller then
// unmarshals it whole.
func (m *modifyIn) decodeOps(b []byte) bool {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		f, r, ok := nextField(rest)
		if !ok || f.num != fReqOperation || f.typ != protowire.BytesType {
			return false
		}
		rest = r
	}
	if n == 0 {
		return len(b) == 0
	}
	m.ops = make([]inOp, n)
	for i := range m.ops {
		f, rest, _ := nextField(b) // read whole above
		v := f.b
		b = rest
		if decodeOp(v, m.session, &m.ops[i]) {
			continue
		}
		o := new(spb.AFTOperation)
		if proto.Unmarshal(v, o) != nil {
			m.ops = nil
			return false
		}
		m.ops[i] = opOf(o, m.session)
	}
	return true
}

// seen records the fields an operation had, to leave a repeated singular
// field (which proto merges) to proto.Unmarshal.
type seen uint16

// field is one field of a protobuf message: a varint's value, or a
// length-delimited field's bytes (the message's own, not copied).
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// nextField reads the field b starts with and returns what follows it;
// false for a malformed field or one of another wire type than varint or
// length-delimited (none of the fields the decoders read has another).
func nextField(b []byte) (f field, rest []byte, ok bool) {
	num, typ, l := protowire.ConsumeTag(b)
	if l < 0 {
		return f, nil, false
	}
	f.num, f.typ = num, typ
	b = b[l:]
	var k int
	switch typ {
	case protowire.VarintType:
		f.u, k = protowire.ConsumeVarint(b)
	case protowire.BytesType:
		f.b, k = protowire.ConsumeBytes(b)
	default:
		return f, nil, false
	}
	if k < 0 {
		return f, nil, false
	}
	return f, b[k:], true
}

func (s *seen) first(bit seen) bool {
	if *s&bit != 0 {
		return false
	}
	*s |= bit
	return true
}

// decodeOp reads an IPv4, IPv6 or next-hop-group operation whose every
// field it knows into in; false for anything else (next hops, other AFTs,
// an operation type toOp refuses, no entry, unknown fields).
func decodeOp(b []byte, session string, in *inOp) bool {
	*in = inOp{}
	var s seen
	var verb aft.Verb
	var entry []byte
	var entryField protowire.Number
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		num, v := f.num, f.b
		switch {
		case num == fOpID && f.typ == protowire.VarintType && s.first(1):
			in.id = f.u
		case num == fOpOp && f.typ == protowire.VarintType && s.first(2):
			switch spb.AFTOperation_Operation(int32(f.u)) {
			case spb.AFTOperation_ADD:
				verb = aft.Add
			case spb.AFTOperation_REPLACE:
				verb = aft.Replace
			case spb.AFTOperation_DELETE:
				verb = aft.Delete
			default:
				return false
			}
		case f.typ != protowire.BytesType:
			return false
		case num == fOpNI && s.first(4):
			// The name every operation of a load carries is valid UTF-8
			// as it is: only another is checked.
			if string(v) != DefaultNetworkInstance && !utf8.Valid(v) {
				return false
			}
			in.ni = instanceName(v)
		case num == fOpElection && s.first(8):
			if !decodeU128(v, &in.elec) {
				return false
			}
			in.hasElec = true
		case (num == fOpIPv4 || num == fOpIPv6 || num == fOpNHG) && s.first(16):
			entry, entryField = v, num
		default:
			return false
		}
	}
	if s&2 == 0 || s&16 == 0 {
		// No operation type or no entry: toOp's errors.
		return false
	}
	op := &aft.Op{ID: in.id, Verb: verb}
	op.Entry.Meta.Session = session
	var ok bool
	switch entryField {
	case fOpIPv4:
		op.Entry.Kind = aft.KindIPv4
		ok = decodeIPKey(entry, fIPv4NHG, fIPv4Metadata, fIPv4NHGNI, &op.Entry.IP, &in.nhgNI)
	case fOpIPv6:
		op.Entry.Kind = aft.KindIPv6
		ok = decodeIPKey(entry, fIPv6NHG, fIPv6Metadata, fIPv6NHGNI, &op.Entry.IP, &in.nhgNI)
	default:
		op.Entry.Kind = aft.KindNextHopGroup
		ok = decodeNHGKey(entry, &op.Entry.NHG)
	}
	if !ok {
		return false
	}
	in.op = op
	return true
}

// instanceName is the network instance's name, the constant for the one
// every operation names (no string per operation).
func instanceName(b []byte) string {
	if string(b) == DefaultNetworkInstance {
		return DefaultNetworkInstance
	}
	return string(b)
}

func decodeU128(b []byte, u *uint128) bool {
	var s seen
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.VarintType {
			return false
		}
		b = rest
		switch {
		case f.num == fU128High && s.first(1):
			u.hi = f.u
		case f.num == fU128Low && s.first(2):
			u.lo = f.u
		default:
			return false
		}
	}
	return true
}

// decodeIPKey reads an Ipv4EntryKey or Ipv6EntryKey (their entries
// differ in field numbers only) as ipEntryOf does.
func decodeIPKey(b []byte, fNHG, fMeta, fNHGNI protowire.Number, e *aft.IPEntry, nhgNI *string) bool {
	var s seen
	var prefix, entry []byte
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.BytesType {
			return false
		}
		b = rest
		switch {
		case f.num == fKeyPrefix && s.first(1):
			prefix = f.b
		case f.num == fKeyEntry && s.first(2):
			entry = f.b
		default:
			return false
		}
	}
	// An unparsable prefix stays invalid; the RIB fails it. A prefix that
	// parses is ASCII (ParsePrefix takes no zone), so only one that does
	// not is checked for the UTF-8 proto.Unmarshal requires.
	var ok bool
	if e.Prefix, ok = parsePrefix(prefix); !ok && !utf8.Valid(prefix) {
		return false
	}
	s = 0
	for len(entry) > 0 {
		f, rest, ok := nextField(entry)
		if !ok || f.typ != protowire.BytesType {
			return false
		}
		entry = rest
		num, v := f.num, f.b
		switch {
		case num == fNHG && s.first(1):
			if !decodeUint(v, &e.NHG) {
				return false
			}
		case num == fMeta && s.first(2):
			md, ok := wrapperBytes(v)
			if !ok {
				return false
			}
			if len(md) > 0 {
				e.Metadata = append([]byte(nil), md...)
			}
		case num == fNHGNI && s.first(4):
			v, ok := wrapperBytes(v)
			if !ok || !utf8.Valid(v) {
				return false
			}
			*nhgNI = instanceName(v)
		default:
			return false
		}
	}
	return true
}

// parsePrefix parses b as netip.ParsePrefix does, without copying it
// into a string first (an allocation for each of a load's entries, as
// much CPU as the parse): a Prefix keeps nothing of the text it was
// parsed from (it has no zone), and the error, which does, is dropped
// here; b is not changed while ParsePrefix reads it.
func parsePrefix(b []byte) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(unsafe.String(unsafe.SliceData(b), len(b)))
	return p, err == nil
}

// decodeNHGKey reads a NextHopGroupKey as toOp does.
func decodeNHGKey(b []byte, g *aft.NextHopGroup) bool {
	var s seen
	var group []byte
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case f.num == fNHGKeyID && f.typ == protowire.VarintType && s.first(1):
			g.ID = f.u
		case f.num == fNHGKeyGroup && f.typ == protowire.BytesType && s.first(2):
			group = f.b
		default:
			return false
		}
	}
	s = 0
	for len(group) > 0 {
		f, rest, ok := nextField(group)
		if !ok || f.typ != protowire.BytesType {
			return false
		}
		group = rest
		num, v := f.num, f.b
		switch {
		case num == fNHGBackup && s.first(1):
			if !decodeUint(v, &g.Backup) {
				return false
			}
		case num == fNHGNextHop:
			var m aft.Member
			if !decodeMember(v, &m) {
				return false
			}
			g.Members = append(g.Members, m)
		default:
			return false
		}
	}
	sortMembers(g.Members)
	return true
}

// decodeMember reads a group's NextHopKey: its index and weight.
func decodeMember(b []byte, m *aft.Member) bool {
	var s seen
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case f.num == fNHGMemberIdx && f.typ == protowire.VarintType && s.first(1):
			m.Index = f.u
		case f.num == fNHGMemberNH && f.typ == protowire.BytesType && s.first(2):
			var t seen
			for v := f.b; len(v) > 0; {
				w, rest, ok := nextField(v)
				if !ok || w.num != fNHGWeight || w.typ != protowire.BytesType || !t.first(1) || !decodeUint(w.b, &m.Weight) {
					return false
				}
				v = rest
			}
		default:
			return false
		}
	}
	return true
}

// decodeUint reads a ywrapper.UintValue.
func decodeUint(b []byte, u *uint64) bool {
	*u = 0
	var s seen
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num != fWrapperValue || f.typ != protowire.VarintType || !s.first(1) {
			return false
		}
		*u, b = f.u, rest
	}
	return true
}

// wrapperBytes reads a ywrapper.StringValue or BytesValue (the caller
// checks a string's UTF-8). The bytes are the input's.
func wrapperBytes(b []byte) ([]byte, bool) {
	var out []byte
	var s seen
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num != fWrapperValue || f.typ != protowire.BytesType || !s.first(1) {
			return nil, false
		}
		out, b = f.b, rest
	}
	return out, true
}
