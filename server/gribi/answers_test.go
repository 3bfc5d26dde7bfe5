package gribi

import (
	"bytes"
	"strings"
	"testing"

	spb "github.com/openconfig/gribi/v1/proto/service"
	"google.golang.org/protobuf/proto"
)

// TestAnswersMatchMarshal: a response written by answers is, byte for
// byte, what proto.Marshal writes for the same results.
func TestAnswersMatchMarshal(t *testing.T) {
	type res struct {
		id      uint64
		st      spb.AFTResult_Status
		details bool
		msg     string
	}
	rs := []res{
		{1, spb.AFTResult_RIB_PROGRAMMED, false, ""},
		{0, spb.AFTResult_FIB_PROGRAMMED, false, ""},
		{1 << 40, spb.AFTResult_UNSET, false, ""},
		{3, spb.AFTResult_FAILED, true, ""},
		{4, spb.AFTResult_FIB_FAILED, true, "PENDING: no route to the gateway"},
		{1<<64 - 1, spb.AFTResult_FAILED, true, strings.Repeat("long reason ", 40)},
		{200000, spb.AFTResult_Status(99), false, ""},
		{0, 0, false, ""},
	}
	ss := &session{id: "a"}
	ans := newAnswers(len(rs))
	want := &spb.ModifyResponse{}
	for _, r := range rs {
		m := &spb.AFTResult{Id: r.id, Status: r.st}
		if r.details {
			m.ErrorDetails = &spb.AFTErrorDetails{ErrorMessage: r.msg}
			ans.addDetails(ss, r.id, r.st, r.msg)
		} else {
			ans.add(ss, r.id, r.st)
		}
		want.Result = append(want.Result, m)
	}
	wb, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := ans.resp[ss]
	if !bytes.Equal(got.WireBytes(), wb) {
		t.Errorf("answers wrote\n%x\nproto.Marshal writes\n%x", got.WireBytes(), wb)
	}
	if got.results != len(rs) {
		t.Errorf("%d results counted, want %d", got.results, len(rs))
	}
}

// TestAnswersSessionsApart: results of sessions interleaved (runs of one
// session, then another, then back) each go to their own session's
// response, in the order they came, and the sessions are answered in the
// order they first had a result.
func TestAnswersSessionsApart(t *testing.T) {
	a, b := &session{id: "a"}, &session{id: "b"}
	seq := []*session{a, a, b, a, b, b, a}
	ans := newAnswers(len(seq))
	want := map[*session]*spb.ModifyResponse{a: {}, b: {}}
	for i, ss := range seq {
		id := uint64(i + 1)
		ans.add(ss, id, spb.AFTResult_RIB_PROGRAMMED)
		want[ss].Result = append(want[ss].Result, &spb.AFTResult{Id: id, Status: spb.AFTResult_RIB_PROGRAMMED})
	}
	for _, ss := range []*session{a, b} {
		wb, err := proto.Marshal(want[ss])
		if err != nil {
			t.Fatal(err)
		}
		got := ans.resp[ss]
		if !bytes.Equal(got.WireBytes(), wb) || got.results != len(want[ss].Result) {
			t.Errorf("session %s: answers wrote %d results\n%x\nwant %d\n%x", ss.id, got.results, got.WireBytes(), len(want[ss].Result), wb)
		}
	}
	if len(ans.order) != 2 || ans.order[0] != a || ans.order[1] != b {
		t.Errorf("sessions answered in order %v, want a, b", ans.order)
	}
}
