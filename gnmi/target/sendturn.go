package target

import (
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
)

// A big Get's turn on its busy-read slot lasts until gRPC's transport has
// written its response, not only until the response is encoded. Released
// at the end of encoding, the slot let the next reader walk and encode
// while the transport wrote the last one's 250 KB (frames and loopback
// syscalls, whose receive path runs in the sender's context too): with
// ten readers several responses were in the transport at once, and with
// the readers' walks they kept both cores busy while a Set's thread,
// back from fdatasync, waited for one. Held until gRPC frees the
// response's buffers, the slot bounds the responses in the transport to
// Limits.BusyReads.

// maxSendHold bounds how long a response in the transport keeps its slot:
// a client that does not read (HTTP/2 flow control holds the response)
// costs the other big reads that much at most per Get, and never stops
// them.
const maxSendHold = 10 * time.Millisecond

// sentPool is the buffer pool of one wire response: it counts the
// buffers out of it and calls sent once all of them are back and the
// response was handed over (the count starts at one for that).
type sentPool struct {
	mem.BufferPool
	out  atomic.Int64
	sent func() // set before handOver; nil: nothing waits
}

func newSentPool(p mem.BufferPool) *sentPool {
	s := &sentPool{BufferPool: p}
	s.out.Store(1)
	return s
}

func (p *sentPool) Get(n int) *[]byte {
	p.out.Add(1)
	return p.BufferPool.Get(n)
}

func (p *sentPool) Put(b *[]byte) {
	p.BufferPool.Put(b)
	p.done()
}

// handOver marks the response handed to gRPC: once its buffers are all
// back, sent runs.
func (p *sentPool) handOver() { p.done() }

func (p *sentPool) done() {
	if p.out.Add(-1) == 0 && p.sent != nil {
		p.sent()
	}
}

// sendTurn is a busy-read slot kept by a response in the transport.
type sendTurn struct {
	once sync.Once
	busy chan struct{}
	done chan struct{}
}

// end gives the slot back; only the first call does.
func (t *sendTurn) end() {
	t.once.Do(func() {
		<-t.busy
		close(t.done)
	})
}

// keepForSend passes the read's busy-read slot, if it took one, to the
// transport's write of its response: the slot is given back when the
// response's buffers are (p.sent), or after maxSendHold. The read's own
// release then does nothing. It returns the turn, nil without a slot.
func (c *readCost) keepForSend(p *sentPool) *sendTurn {
	if !c.held {
		return nil
	}
	c.held = false
	t := &sendTurn{busy: c.busy, done: make(chan struct{})}
	p.sent = t.end
	bound := c.clock.After(maxSendHold)
	go func() {
		select {
		case <-t.done:
		case <-bound:
			t.end()
		}
	}()
	return t
}
