package shellstream

import (
	"context"
	"sync"
	"time"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
)

// outboxDataBytes bounds the DATA payload queued for a slow client; the
// endpoint reader waits beyond it, so back-pressure reaches the endpoint.
const outboxDataBytes = 256 << 10

// outbox orders a stream's outgoing frames in one FIFO. Control frames
// (CHALLENGE, GRANT, DENY, DRAIN, POSTURE-CHANGE, CLOSE) are queued
// without ever blocking, so the posture step can always reach a session;
// DATA frames wait while outboxDataBytes of payload are queued. One sender
// goroutine numbers and sends them in order, so a CLOSE after the last
// DATA arrives after it.
type outbox struct {
	mu        sync.Mutex
	q         []*pb.SessionResponse
	dataBytes int
	finished  bool
	wake      chan struct{} // a frame was queued or finish was called
	space     chan struct{} // data was sent
	done      chan struct{} // the sender has returned
}

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{})}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// control queues a control frame; after finish it is dropped.
func (o *outbox) control(f *pb.SessionResponse) {
	o.mu.Lock()
	if !o.finished {
		o.q = append(o.q, f)
	}
	o.mu.Unlock()
	poke(o.wake)
}

// sendData queues a DATA frame, waiting while the queue holds too much.
func (o *outbox) sendData(ctx context.Context, f *pb.SessionResponse) error {
	n := len(f.GetData().GetPayload())
	for {
		o.mu.Lock()
		if o.finished {
			o.mu.Unlock()
			return context.Canceled
		}
		if o.dataBytes == 0 || o.dataBytes+n <= outboxDataBytes {
			o.q = append(o.q, f)
			o.dataBytes += n
			o.mu.Unlock()
			poke(o.wake)
			return nil
		}
		o.mu.Unlock()
		select {
		case <-o.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finish tells the sender to send what is queued and stop.
func (o *outbox) finish() {
	o.mu.Lock()
	o.finished = true
	o.mu.Unlock()
	poke(o.wake)
}

// next returns the next frame; nil once finished and empty, or when stop
// closes.
func (o *outbox) next(stop <-chan struct{}) *pb.SessionResponse {
	for {
		o.mu.Lock()
		if len(o.q) > 0 {
			f := o.q[0]
			o.q[0] = nil
			o.q = o.q[1:]
			if d := f.GetData(); d != nil {
				o.dataBytes -= len(d.GetPayload())
				poke(o.space)
			}
			o.mu.Unlock()
			return f
		}
		fin := o.finished
		o.mu.Unlock()
		if fin {
			return nil
		}
		select {
		case <-o.wake:
		case <-stop:
			return nil
		}
	}
}

// sender sends frames until next returns nil or a send fails. Each send
// is watched: one that has not completed after timeout (the client
// stopped reading and flow control holds the send) calls stuck, which
// ends the stream's handler and with it the blocked send. before sees
// each numbered frame as it goes out (frame headers, so they are recorded
// before the peer can answer them), after each one sent (counters).
func (o *outbox) sender(send func(*pb.SessionResponse) error, stop <-chan struct{}, clock Clock, timeout time.Duration,
	stuck func(), before, after func(*pb.SessionResponse)) error {
	defer close(o.done)
	var seq uint64
	for {
		f := o.next(stop)
		if f == nil {
			return nil
		}
		seq++
		f.Seq = seq
		before(f)
		cancel := clock.AfterFunc(timeout, stuck)
		err := send(f)
		cancel()
		if err != nil {
			return err
		}
		after(f)
	}
}
