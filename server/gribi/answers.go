package gribi

import (
	spb "github.com/openconfig/gribi/v1/proto/service"
)

// answers collects a batch's results into one response per session, the
// results in the order they came. A bulk load answers 100,000 operations
// twice (RIB, then FIB): the results are allocated together, not one by
// one, and a session's list at its size, not grown by append.
type answers struct {
	results []spb.AFTResult
	n       int
	resp    map[*session]*spb.ModifyResponse
	order   []*session
}

// newAnswers has room for n results.
func newAnswers(n int) *answers {
	return &answers{results: make([]spb.AFTResult, n), resp: map[*session]*spb.ModifyResponse{}}
}

// add appends result id with status st to ss's response and returns it
// for details. It panics past the room newAnswers made.
func (a *answers) add(ss *session, id uint64, st spb.AFTResult_Status) *spb.AFTResult {
	r := &a.results[a.n]
	a.n++
	r.Id, r.Status = id, st
	m := a.resp[ss]
	if m == nil {
		// Room for every result still to come: exact when the batch is
		// one session's, as a bulk load's is.
		m = &spb.ModifyResponse{Result: make([]*spb.AFTResult, 0, len(a.results)-a.n+1)}
		a.resp[ss] = m
		a.order = append(a.order, ss)
	}
	m.Result = append(m.Result, r)
	return r
}

// send sends each session its response, in the order the sessions first
// had a result.
func (a *answers) send() {
	for _, ss := range a.order {
		ss.send(a.resp[ss])
	}
}
