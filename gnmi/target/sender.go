package target

import (
	"context"
	"sync"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sender owns a stream's Sends. The stream's handler produces
// notifications (from a snapshot walk, the change feed or a sample) and
// queues them; one goroutine sends them as fast as the client takes them
// (gRPC flow control blocks a Send while the client's window is full). The
// queue is short, so a client that does not read costs its stream a few
// notifications, not the tree: the producer waits while the queue is
// full, and if the client takes nothing for Limits.SendStall the stream
// ends with RESOURCE_EXHAUSTED.
//
// Ending the stream from the handler while the sending goroutine is stuck
// in a Send is safe: gRPC cancels the stream when the handler returns,
// which fails that Send, and the goroutine exits.
type sender struct {
	s     *Server
	st    gpb.GNMI_SubscribeServer
	queue chan any // *gpb.SubscribeResponse or *preEncoded
	done  chan struct{}
	quit  chan struct{}
	// closing and quitting close queue and quit once each.
	closing, quitting sync.Once
	err               error // why the goroutine stopped (read after done)
}

func (s *Server) newSender(st gpb.GNMI_SubscribeServer) *sender {
	q := &sender{s: s, st: st, queue: make(chan any, s.lim.StreamBuffer),
		done: make(chan struct{}), quit: make(chan struct{})}
	go q.run()
	return q
}

func (q *sender) run() {
	defer close(q.done)
	for {
		select {
		case m, ok := <-q.queue:
			if !ok {
				return
			}
			if err := q.st.SendMsg(m); err != nil {
				q.err = err
				return
			}
		case <-q.quit:
			return
		}
	}
}

// send queues one message, waiting while the queue is full; the client
// not taking one for the stall limit ends the stream.
func (q *sender) send(ctx context.Context, m any, updates int) error {
	if q.s.queued != nil {
		q.s.queued(updates)
	}
	select {
	case q.queue <- m:
		return nil
	default:
	}
	stall := q.s.clock.After(q.s.lim.SendStall)
	select {
	case q.queue <- m:
		return nil
	case <-q.done:
		return q.err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-stall:
		return status.Errorf(codes.ResourceExhausted,
			"the client took no notification for %v with %d queued (the stream's limit); resubscribe", q.s.lim.SendStall, cap(q.queue))
	}
}

// flush waits until the client has taken everything queued (or the
// stall limit passes without it taking the next message), so that a
// handler returning nil never drops a notification.
func (q *sender) flush(ctx context.Context) error {
	q.closing.Do(func() { close(q.queue) })
	for {
		pending := len(q.queue)
		stall := q.s.clock.After(q.s.lim.SendStall)
		select {
		case <-q.done:
			return q.err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-stall:
			if len(q.queue) < pending {
				continue // the client is reading, slowly
			}
			return status.Errorf(codes.ResourceExhausted,
				"the client took no notification for %v with %d queued (the stream's limit)", q.s.lim.SendStall, pending)
		}
	}
}

// stop ends the sending goroutine without waiting for it: what is queued
// is dropped, and a Send in progress fails when the handler returns.
func (q *sender) stop() {
	q.quitting.Do(func() { close(q.quit) })
}
