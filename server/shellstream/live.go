package shellstream

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
)

// live is a granted session.
type live struct {
	s  *Service
	c  *conn
	ep net.Conn

	// Fixed at GRANT.
	id, peer, node, cluster, tier string
	typ                           session.Type
	local                         bool
	verification                  session.Verification
	started, deadline             time.Time
	atHandshake                   uint8

	mu            sync.Mutex
	initiator     uint8
	localLevel    uint8
	effective     uint8
	caps          []session.Capability
	status        string
	drainDeadline time.Time
	closedAt      time.Time
	closeReason   string
	ending        bool
	inputClosed   bool // the initiator sent CLOSE (read by the loop only)
	halfClosed    bool // the endpoint's write side was shut after CLOSE
	timers        []func() bool

	end  chan struct{} // closed by the first terminate
	done chan struct{} // closed once torn down
}

func newLive(c *conn, h *hello, v verifiedSAT, now time.Time) *live {
	return &live{s: c.s, c: c, id: h.id, peer: h.peer, node: h.node, cluster: h.cluster, tier: h.tier,
		typ: h.typ, local: c.local, verification: h.rules.Verification, started: now,
		deadline: now.Add(c.s.opts.Lifetime), atHandshake: h.eff, initiator: h.initiator, localLevel: h.local,
		effective: h.eff, caps: h.caps, status: StatusActive, end: make(chan struct{}), done: make(chan struct{})}
}

// armDeadline ends the session at GRANT's deadline; grant calls it before
// GRANT is sent, so the deadline holds from the moment the initiator
// learns it.
func (l *live) armDeadline() {
	l.mu.Lock()
	l.timers = append(l.timers, l.s.clock.AfterFunc(l.deadline.Sub(l.s.clock.Now()), func() {
		l.terminate(pb.CloseReason_CLOSE_REASON_EXPIRED, "the session's deadline passed", true)
	}))
	l.mu.Unlock()
}

// serve relays until the session ends, then tears it down.
func (l *live) serve() error {
	ctx, cancel := context.WithCancel(context.Background())
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		l.pump(ctx)
	}()
	err := l.loop()
	cancel()
	l.ep.Close()
	<-pumped
	l.teardown()
	return err
}

// loop takes the initiator's frames until the session ends.
func (l *live) loop() error {
	c := l.c
	for {
		select {
		case f := <-c.in:
			switch {
			case errors.Is(f.err, errProtocol):
				l.terminate(pb.CloseReason_CLOSE_REASON_PROTOCOL, f.err.Error(), true)
				continue
			case errors.Is(f.err, io.EOF):
				// The initiator half-closed its side (after CLOSE, or
				// instead of it): it sends nothing more, but still reads.
				l.inputDone()
				continue
			case f.err != nil:
				l.terminate(pb.CloseReason_CLOSE_REASON_UNSPECIFIED, "the initiator's stream ended", false)
				continue
			}
			l.frame(f.req)
		case <-l.end:
			return nil
		case <-c.stream.Context().Done():
			l.terminate(pb.CloseReason_CLOSE_REASON_UNSPECIFIED, "the stream was cancelled", false)
		case <-c.abort:
			l.terminate(pb.CloseReason_CLOSE_REASON_UNSPECIFIED, "the client stopped reading", false)
			return errStuck
		}
	}
}

func (l *live) frame(req *pb.SessionRequest) {
	switch f := req.GetFrame().(type) {
	case *pb.SessionRequest_Data:
		if l.inputClosed {
			l.terminate(pb.CloseReason_CLOSE_REASON_PROTOCOL, "data after close", true)
			return
		}
		l.ep.SetWriteDeadline(time.Now().Add(l.s.opts.SendTimeout))
		if _, err := l.ep.Write(f.Data.GetPayload()); err != nil {
			l.terminate(pb.CloseReason_CLOSE_REASON_ENDPOINT, "write to the endpoint: "+err.Error(), true)
		}
	case *pb.SessionRequest_PostureChange:
		lv := f.PostureChange.GetPostureLevel()
		if !accord.Valid(uint8(min(lv, 255))) {
			l.terminate(pb.CloseReason_CLOSE_REASON_PROTOCOL, "posture-change to a level outside 1..5", true)
			return
		}
		l.mu.Lock()
		l.initiator = uint8(lv)
		local := l.localLevel
		l.mu.Unlock()
		l.reevaluate(local, l.s.rulesFor)
	case *pb.SessionRequest_Close:
		l.inputDone()
	default:
		l.terminate(pb.CloseReason_CLOSE_REASON_PROTOCOL, "unexpected "+requestKind(req)+" after grant", true)
	}
}

// inputDone handles the initiator's CLOSE: it has nothing more to send.
// The endpoint's write side is shut so it sees end of input, finishes
// and closes; what it still writes reaches the initiator, then CLOSE
// (normal). An endpoint that does not finish within DrainTimeout is cut.
func (l *live) inputDone() {
	if l.inputClosed {
		return
	}
	l.inputClosed = true
	if cw, ok := l.ep.(interface{ CloseWrite() error }); ok {
		l.mu.Lock()
		l.halfClosed = true
		l.mu.Unlock()
		if cw.CloseWrite() != nil {
			l.terminate(pb.CloseReason_CLOSE_REASON_NORMAL, "closed by the initiator", true)
			return
		}
		l.mu.Lock()
		l.timers = append(l.timers, l.s.clock.AfterFunc(l.s.opts.DrainTimeout, func() {
			l.terminate(pb.CloseReason_CLOSE_REASON_NORMAL, "closed by the initiator", true)
		}))
		l.mu.Unlock()
		return
	}
	l.terminate(pb.CloseReason_CLOSE_REASON_NORMAL, "closed by the initiator", true)
}

// pump relays the endpoint's bytes to the initiator.
func (l *live) pump(ctx context.Context) {
	buf := make([]byte, dataChunk)
	for {
		n, err := l.ep.Read(buf)
		if n > 0 {
			f := &pb.SessionResponse{Frame: &pb.SessionResponse_Data{Data: &pb.Data{Payload: slices.Clone(buf[:n])}}}
			if l.c.out.sendData(ctx, f) != nil {
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				reason, text := pb.CloseReason_CLOSE_REASON_ENDPOINT, "the endpoint closed the session"
				if !errors.Is(err, io.EOF) {
					text = "read from the endpoint: " + err.Error()
				} else if l.endpointFinished() {
					reason, text = pb.CloseReason_CLOSE_REASON_NORMAL, "closed by the initiator"
				}
				l.terminate(reason, text, true)
			}
			return
		}
	}
}

// endpointFinished reports whether the endpoint's end of input was the
// initiator's CLOSE (set before the write side was shut, so the pump sees
// it once the endpoint answers with EOF).
func (l *live) endpointFinished() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.halfClosed
}

// terminate ends the session once: the first reason wins. With sendClose
// a CLOSE frame follows whatever is queued.
func (l *live) terminate(reason pb.CloseReason, text string, sendClose bool) {
	l.mu.Lock()
	if l.ending {
		l.mu.Unlock()
		return
	}
	l.ending = true
	l.closeReason = text
	if sendClose {
		l.c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Close{Close: &pb.Close{Reason: reason, Text: text}}})
	}
	close(l.end)
	l.mu.Unlock()
}

// teardown marks the session closed, unregisters it, records and
// publishes it.
func (l *live) teardown() {
	l.mu.Lock()
	for _, stop := range l.timers {
		stop()
	}
	l.timers = nil
	l.status = StatusClosed
	l.closedAt = l.s.clock.Now()
	l.drainDeadline = time.Time{}
	l.mu.Unlock()
	l.s.unregister(l)
	l.s.state.closed(l.snapshot())
	close(l.done)
}

// recordClose emits the close transit; the handler calls it once the last
// frames were flushed, so their headers are part of it.
func (l *live) recordClose() {
	l.mu.Lock()
	eff := l.effective
	l.mu.Unlock()
	l.s.emit(l.event(EventClose, l.closeReasonText(), eff))
}

func (l *live) closeReasonText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeReason
}

// reevaluate applies the rules of the session's effective level now (the
// lower of local and the initiator's) and returns the action taken ("" for
// a session that is already ending).
func (l *live) reevaluate(local uint8, rulesOf func(uint8) session.Rules) session.Action {
	l.mu.Lock()
	if l.ending {
		l.mu.Unlock()
		return "" // already ending: nothing to do, nothing to count
	}
	l.localLevel = local
	prev := l.effective
	eff := session.Effective(local, l.initiator)
	l.effective = eff
	r := rulesOf(eff)
	act := r.Reevaluate(session.Live{Type: l.typ, Tier: l.tier, Local: l.local, Granted: l.caps})
	l.c.frames.setLevel(eff)
	now := l.s.clock.Now()
	switch act {
	case session.Keep:
		if eff != prev {
			l.c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_PostureChange{PostureChange: &pb.PostureChange{
				PostureLevel: uint32(eff), Capabilities: capsToProto(l.caps)}}})
		}
		l.mu.Unlock()
	case session.Drain:
		if l.status == StatusDraining {
			l.mu.Unlock()
			break
		}
		l.status = StatusDraining
		l.drainDeadline = now.Add(l.s.opts.DrainTimeout)
		l.c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Drain{Drain: &pb.Drain{
			Deadline: timestamppb.New(l.drainDeadline), Reason: pb.DrainReason_DRAIN_REASON_POSTURE,
			Text: "posture level " + levelText(eff) + " narrows this session's grant; finish and reconnect", EffectiveLevel: uint32(eff)}}})
		l.timers = append(l.timers, l.s.clock.AfterFunc(l.s.opts.DrainTimeout, func() {
			l.terminate(pb.CloseReason_CLOSE_REASON_DRAIN_TIMEOUT, "the drain deadline passed", true)
		}))
		l.mu.Unlock()
		l.s.emit(l.event(EventDrain, "posture level "+levelText(eff)+": drain", eff))
	case session.Terminate:
		l.c.out.control(&pb.SessionResponse{Frame: &pb.SessionResponse_Drain{Drain: &pb.Drain{
			Deadline: timestamppb.New(now), Reason: pb.DrainReason_DRAIN_REASON_POSTURE,
			Text: "posture level " + levelText(eff) + " ends this session now", EffectiveLevel: uint32(eff)}}})
		l.mu.Unlock()
		l.s.emit(l.event(EventDrain, "posture level "+levelText(eff)+": terminate", eff))
		l.terminate(pb.CloseReason_CLOSE_REASON_POSTURE, "posture level "+levelText(eff)+" does not admit this session", true)
	}
	l.s.state.touch(l)
	return act
}

func levelText(l uint8) string { return string('0' + l) }

// event builds a transit event of a live session.
func (l *live) event(kind EventKind, reason string, eff uint8) *Event {
	hdrs, dropped := l.c.frames.take(eff)
	l.mu.Lock()
	defer l.mu.Unlock()
	return &Event{SessionID: l.id, Kind: kind, Peer: l.peer, Node: l.node, Cluster: l.cluster, Tier: l.tier,
		Type: string(l.typ), Critical: l.typ.Critical(), PostureLevel: eff, LocalLevel: l.localLevel,
		InitiatorLevel: l.initiator, Time: l.s.clock.Now(), Reason: reason, Capabilities: capsToStrings(l.caps),
		FrameHeaders: hdrs, FrameHeadersDropped: dropped}
}

// snapshot is the session's state now.
func (l *live) snapshot() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return State{ID: l.id, Peer: l.peer, Node: l.node, Cluster: l.cluster, Local: l.local, Tier: l.tier,
		Type: string(l.typ), Critical: l.typ.Critical(), Capabilities: capsToStrings(l.caps),
		Verification: string(l.verification), InitiatorPosture: l.initiator, PostureAtHandshake: l.atHandshake,
		EffectivePosture: l.effective, Status: l.status, Started: l.started, DrainDeadline: l.drainDeadline,
		Closed: l.closedAt, CloseReason: l.closeReason, BytesIn: l.c.bytesIn.Load(), BytesOut: l.c.bytesOut.Load(),
		FramesIn: l.c.framesIn.Load(), FramesOut: l.c.framesOut.Load()}
}
