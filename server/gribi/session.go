package gribi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/models/aft"
)

// session is one Modify stream.
type session struct {
	svc *Service
	id  string
	who Writer
	// rpc is the Modify stream's context, for its values only: the
	// identity the interceptors attached, which the session's commits
	// carry (see actingFor).
	rpc context.Context

	// Parameters, set once by the first message (defaults: ALL_PRIMARY,
	// DELETE, RIB_ACK, as the specification says).
	paramsSet     bool
	singlePrimary bool
	preserve      bool
	fibAck        bool
	// elec is the last election id the session sent (zero: none).
	elec uint128

	// recorded: its /kedge/aft/sessions entry is in the tree (writer only).
	recorded bool

	mu      sync.Mutex
	queue   []response
	wake    chan struct{}
	sendErr error
	// inflight counts operations that still owe a result (RIB or FIB).
	inflight int
	idle     chan struct{} // closed when inflight drops to zero
}

func (ss *session) record() sessionRecord {
	return sessionRecord{ID: ss.id, Identity: ss.who.Name, Preserve: ss.preserve, Tier: ss.who.Tier, Class: ss.svc.cfg.Class}
}

// response is a ModifyResponse to send: a generated message, or one in
// wire form (answers).
type response struct {
	m   *spb.ModifyResponse
	enc *encodedResponse
}

// send queues a response; the session's sender writes it.
func (ss *session) send(r *spb.ModifyResponse) { ss.queue1(response{m: r}) }

// sendEncoded queues a response in wire form.
func (ss *session) sendEncoded(r *encodedResponse) { ss.queue1(response{enc: r}) }

func (ss *session) queue1(r response) {
	ss.mu.Lock()
	ss.queue = append(ss.queue, r)
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// owe counts n more operations waiting for their result; done n fewer.
func (ss *session) owe(n int) {
	ss.mu.Lock()
	ss.inflight += n
	ss.mu.Unlock()
}

func (ss *session) done(n int) {
	ss.mu.Lock()
	ss.inflight -= n
	if ss.inflight <= 0 && ss.idle != nil {
		close(ss.idle)
		ss.idle = nil
	}
	ss.mu.Unlock()
}

// drained returns a channel closed once no result is owed.
func (ss *session) drained() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	c := make(chan struct{})
	if ss.inflight <= 0 {
		close(c)
		return c
	}
	if ss.idle == nil {
		ss.idle = make(chan struct{})
	}
	return ss.idle
}

func (ss *session) sender(ctx context.Context, stream spb.GRIBI_ModifyServer, stop <-chan struct{}) {
	for {
		ss.mu.Lock()
		q := ss.queue
		ss.queue = nil
		ss.mu.Unlock()
		for _, r := range q {
			if err := ss.write(stream, r); err != nil {
				ss.mu.Lock()
				ss.sendErr = err
				ss.mu.Unlock()
				return
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-ss.wake:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// write sends r on the stream: a response in wire form as it is when the
// gNMI target's codec is in place, else (a server without it, in tests)
// read back into its message.
func (ss *session) write(stream spb.GRIBI_ModifyServer, r response) error {
	switch {
	case r.m != nil:
		return stream.Send(r.m)
	case ss.svc.cfg.WireCodec:
		return stream.SendMsg(r.enc)
	}
	m := new(spb.ModifyResponse)
	if err := proto.Unmarshal(r.enc.b, m); err != nil {
		return fmt.Errorf("decode answers: %w", err)
	}
	return stream.Send(m)
}

// Modify serves one session: its parameters, elections and operations.
func (s *Service) Modify(stream spb.GRIBI_ModifyServer) error {
	if err := s.ready(); err != nil {
		return err
	}
	ctx := stream.Context()
	who, err := s.cfg.Auth.GRIBIWrite(ctx)
	if err != nil {
		return err
	}
	if err := s.postureAllowsWrite(); err != nil {
		return err
	}
	ss := &session{svc: s, who: who, rpc: ctx, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.nextID++
	ss.id = fmt.Sprintf("%s-%d", s.bootID, s.nextID)
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	stop := make(chan struct{})
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		ss.sender(ctx, stream, stop)
	}()
	err = s.serve(ctx, ss, stream)
	if err == nil {
		// The client closed its side: deliver the results it is owed
		// (RIB and FIB acknowledgements) before the stream ends.
		select {
		case <-ss.drained():
		case <-ctx.Done():
		}
	}
	close(stop)
	<-senderDone
	if err == nil {
		// Whatever the last wake-up left in the queue.
		ss.mu.Lock()
		q := ss.queue
		ss.queue = nil
		ss.mu.Unlock()
		for _, r := range q {
			if serr := ss.write(stream, r); serr != nil {
				break
			}
		}
	}
	s.endSession(ss)
	return err
}

// endSession forgets the session; a DELETE session's entries go with it.
func (s *Service) endSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	if s.master == ss {
		s.master = nil
	}
	s.mu.Unlock()
	s.fib.forget(ss)
	if ss.paramsSet && !ss.preserve {
		// Not tied to the stream's context, which has ended: the removal
		// happens although nobody waits for it (and at the next start
		// if the daemon stops first).
		select {
		case s.work <- work{end: ss}:
		case <-s.ctx.Done():
		}
	}
}

func (s *Service) serve(ctx context.Context, ss *session, stream spb.GRIBI_ModifyServer) error {
	first := true
	req := &modifyIn{session: ss.id}
	for {
		var err error
		if s.cfg.WireCodec {
			err = stream.RecvMsg(req)
		} else {
			var r *spb.ModifyRequest
			if r, err = stream.Recv(); err == nil {
				req.fromProto(r)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ss.mu.Lock()
		serr := ss.sendErr
		ss.mu.Unlock()
		if serr != nil {
			return status.Errorf(codes.Unavailable, "gribi: send to client: %v", serr)
		}
		n := 0
		if req.params != nil {
			n++
		}
		if req.elec != nil {
			n++
		}
		if len(req.ops) > 0 {
			n++
		}
		switch {
		case n > 1:
			return status.Error(codes.InvalidArgument, "gribi: a ModifyRequest carries one of parameters, election id and operations")
		case req.params != nil:
			if err := s.params(ss, req.params, first); err != nil {
				return err
			}
			ss.send(&spb.ModifyResponse{SessionParamsResult: &spb.SessionParametersResult{Status: spb.SessionParametersResult_OK}})
		case req.elec != nil:
			cur, err := s.election(ss, u128(req.elec))
			if err != nil {
				return err
			}
			ss.send(&spb.ModifyResponse{ElectionId: cur.proto()})
		case len(req.ops) > 0:
			if err := s.operations(ctx, ss, req.ops); err != nil {
				return err
			}
		}
		first = false
	}
}

// params checks and records the session's parameters.
func (s *Service) params(ss *session, p *spb.SessionParameters, first bool) error {
	if !first {
		return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_MODIFY_NOT_ALLOWED,
			"gribi: session parameters must be the first message")
	}
	single := p.GetRedundancy() == spb.SessionParameters_SINGLE_PRIMARY
	preserve := p.GetPersistence() == spb.SessionParameters_PRESERVE
	fib := p.GetAckType() == spb.SessionParameters_RIB_AND_FIB_ACK
	switch {
	case !single && preserve:
		return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_UNSUPPORTED_PARAMS,
			"gribi: ALL_PRIMARY with PRESERVE: entries nobody owns could never be removed")
	case !single:
		return modifyErr(codes.Unimplemented, spb.ModifyRPCErrorDetails_UNSUPPORTED_PARAMS,
			"gribi: ALL_PRIMARY redundancy is not supported (use SINGLE_PRIMARY)")
	case fib && !s.cfg.FIB:
		return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_UNSUPPORTED_PARAMS,
			"gribi: RIB_AND_FIB_ACK: this node runs without a route backend, nothing would program the FIB")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for o := range s.sessions {
		if o != ss && o.paramsSet && (o.singlePrimary != single || o.preserve != preserve || o.fibAck != fib) {
			return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_PARAMS_DIFFER_FROM_OTHER_CLIENTS,
				"gribi: session parameters differ from those of another connected session")
		}
	}
	ss.paramsSet, ss.singlePrimary, ss.preserve, ss.fibAck = true, single, preserve, fib
	return nil
}

// election records the session's election id; the highest id (an equal
// one too: a primary reconnecting) makes the session primary. It returns
// the current primary's id.
func (s *Service) election(ss *session, id uint128) (uint128, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ss.singlePrimary {
		return uint128{}, modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_ELECTION_ID_IN_ALL_PRIMARY,
			"gribi: election id from a session that is not SINGLE_PRIMARY")
	}
	if id.isZero() {
		return uint128{}, status.Error(codes.InvalidArgument, "gribi: zero is not an election id")
	}
	ss.elec = id
	if !id.less(s.elec) {
		s.elec, s.master = id, ss
	}
	return s.elec, nil
}

// operations checks a request's operations and hands those that pass to
// the writer; the others are answered FAILED at once. A fatal error ends
// the session.
func (s *Service) operations(ctx context.Context, ss *session, ops []inOp) error {
	if err := s.postureAllowsWrite(); err != nil {
		return err
	}
	if !ss.paramsSet || !ss.singlePrimary {
		return modifyErr(codes.Unimplemented, spb.ModifyRPCErrorDetails_UNSUPPORTED_PARAMS,
			"gribi: operations need a SINGLE_PRIMARY session (ALL_PRIMARY, the default, is not supported)")
	}
	var failed []*spb.AFTResult
	fail := func(id uint64, msg string) {
		failed = append(failed, &spb.AFTResult{Id: id, Status: spb.AFTResult_FAILED,
			ErrorDetails: &spb.AFTErrorDetails{ErrorMessage: msg}})
	}
	accepted := make([]*aft.Op, 0, len(ops))
	s.mu.Lock()
	cur, master := s.elec, s.master
	s.mu.Unlock()
	for i := range ops {
		o := &ops[i]
		switch ni := o.ni; {
		case ni == "":
			fail(o.id, `invalid network instance name ""`)
			continue
		case ni != DefaultNetworkInstance:
			fail(o.id, fmt.Sprintf("unknown network instance %q (Kedge serves %s only)", ni, DefaultNetworkInstance))
			continue
		}
		// Election: a missing id, or no id announced yet, ends the
		// session; an operation of a session that is not primary, or
		// whose id is not the one it announced, fails.
		switch opID := o.elec; {
		case !o.hasElec:
			return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_UNKNOWN,
				"gribi: operation %d has no election id", o.id)
		case ss.elec.isZero():
			return modifyErr(codes.FailedPrecondition, spb.ModifyRPCErrorDetails_UNKNOWN,
				"gribi: operation %d before the session announced an election id", o.id)
		case master != ss:
			fail(o.id, fmt.Sprintf("not the primary (the primary's election id is %s)", cur))
			continue
		case opID != ss.elec:
			fail(o.id, fmt.Sprintf("election id %s is not the session's announced %s", opID, ss.elec))
			continue
		case cur.less(opID):
			return status.Errorf(codes.FailedPrecondition, "gribi: election id %s above the primary's %s", opID, cur)
		case opID.less(cur):
			fail(o.id, fmt.Sprintf("election id %s below the primary's %s", opID, cur))
			continue
		}
		if ip := o.nhgNI; ip != "" && ip != DefaultNetworkInstance {
			fail(o.id, fmt.Sprintf("next-hop-group network instance %q is unknown (Kedge serves %s only)", ip, DefaultNetworkInstance))
			continue
		}
		if o.err != nil {
			fail(o.id, o.err.Error())
			continue
		}
		o.op.Tag = ss
		accepted = append(accepted, o.op)
	}
	if len(failed) > 0 {
		ss.send(&spb.ModifyResponse{Result: failed})
	}
	if len(accepted) == 0 {
		return nil
	}
	ss.owe(len(accepted))
	if err := s.submit(ctx, work{sess: ss, ops: accepted}); err != nil {
		ss.done(len(accepted))
		return err
	}
	return nil
}

func ipNHGInstance(o *spb.AFTOperation) string {
	switch t := o.GetEntry().(type) {
	case *spb.AFTOperation_Ipv4:
		return t.Ipv4.GetIpv4Entry().GetNextHopGroupNetworkInstance().GetValue()
	case *spb.AFTOperation_Ipv6:
		return t.Ipv6.GetIpv6Entry().GetNextHopGroupNetworkInstance().GetValue()
	}
	return ""
}
