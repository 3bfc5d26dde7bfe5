package gribi

import (
	spb "github.com/openconfig/gribi/v1/proto/service"
	"google.golang.org/protobuf/encoding/protowire"
)

// answers collects a batch's results into one response per session, the
// results in the order they came. A bulk load answers 100,000 operations
// twice (RIB, then FIB): each session's response is written as wire bytes
// as its results come (appendResult), with no generated message per
// result, and sent as they are (see session.write).
type answers struct {
	n     int // results still to come, for the first buffer's size
	resp  map[*session]*encodedResponse
	order []*session
	// last is the session of the result before and lastR its response:
	// a batch's results come in runs of one session (a bulk load's are
	// all one), which then skip the map.
	last  *session
	lastR *encodedResponse
}

// encodedResponse is a ModifyResponse in wire form, and how many results
// it holds.
type encodedResponse struct {
	b       []byte
	results int
}

// WireBytes is the response as the gRPC codec sends it
// (target.WireEncoded).
func (r *encodedResponse) WireBytes() []byte { return r.b }

// resultBytes is room for a result without details: tag, length, an id
// below 2^28 and the status (a larger one grows the buffer).
const resultBytes = 2 + 1 + 4 + 2

// newAnswers has room for n results.
func newAnswers(n int) *answers {
	return &answers{n: n, resp: map[*session]*encodedResponse{}}
}

// add appends result id with status st to ss's response.
func (a *answers) add(ss *session, id uint64, st spb.AFTResult_Status) {
	r := a.of(ss)
	r.b = appendResult(r.b, id, st, false, "")
}

// addDetails appends result id with status st and its error message.
func (a *answers) addDetails(ss *session, id uint64, st spb.AFTResult_Status, msg string) {
	r := a.of(ss)
	r.b = appendResult(r.b, id, st, true, msg)
}

func (a *answers) of(ss *session) *encodedResponse {
	r := a.lastR
	if ss != a.last || r == nil {
		r = a.resp[ss]
	}
	if r == nil {
		// Room for every result still to come: exact when the batch is
		// one session's, as a bulk load's is.
		r = &encodedResponse{b: make([]byte, 0, a.n*resultBytes)}
		a.resp[ss] = r
		a.order = append(a.order, ss)
	}
	a.last, a.lastR = ss, r
	r.results++
	a.n--
	return r
}

// appendResult appends an AFTResult as ModifyResponse field 1 (result),
// as proto.Marshal writes it: zero fields left out, the details (field 4)
// present when asked for, their message when not empty.
func appendResult(b []byte, id uint64, st spb.AFTResult_Status, details bool, msg string) []byte {
	n := 0
	if id != 0 {
		n += 1 + protowire.SizeVarint(id)
	}
	if st != 0 {
		n += 1 + protowire.SizeVarint(uint64(st))
	}
	d := 0
	if msg != "" {
		d = 1 + protowire.SizeBytes(len(msg))
	}
	if details {
		n += 1 + protowire.SizeBytes(d)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if id != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, id)
	}
	if st != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(st))
	}
	if details {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(d))
		if msg != "" {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, msg)
		}
	}
	return b
}

// send sends each session its response, in the order the sessions first
// had a result.
func (a *answers) send() {
	for _, ss := range a.order {
		ss.sendEncoded(a.resp[ss])
	}
}
