package target

import (
	"context"
	"runtime"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits bound what one request may cost the node. Zero fields take the
// defaults below. Reads work on a snapshot and never hold up a Set; the
// limits keep one reader from taking the memory or the CPU Sets need.
type Limits struct {
	// GetLeaves is the most leaves one Get may return, all its paths
	// together (default 1,048,576); beyond it the Get ends with
	// RESOURCE_EXHAUSTED. Subscribe (ONCE for a one-off read) streams at
	// the client's pace and has no such limit.
	GetLeaves int
	// GetVisits is the most instances one Get may walk, all its paths
	// together (default 8,388,608): one path visits each instance at most
	// once however many wildcards it holds, so this bounds requests that
	// repeat a path.
	GetVisits int
	// BusyReads is how many reads may be past their first few thousand
	// instances and leaves at once (default half the CPUs, at least one).
	// Small reads never wait; big ones take turns, so they cannot crowd
	// Set out of the CPUs.
	BusyReads int
	// StreamBuffer is how many notifications a stream queues ahead of its
	// client (default 2); each holds at most 512 updates.
	StreamBuffer int
	// SendStall is how long a stream waits for its client to take a
	// notification while its queue is full (default one minute); then it
	// ends with RESOURCE_EXHAUSTED and the client resubscribes.
	SendStall time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.GetLeaves <= 0 {
		l.GetLeaves = 1 << 20
	}
	if l.GetVisits <= 0 {
		l.GetVisits = 1 << 23
	}
	if l.BusyReads <= 0 {
		l.BusyReads = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if l.StreamBuffer <= 0 {
		l.StreamBuffer = 2
	}
	if l.SendStall <= 0 {
		l.SendStall = time.Minute
	}
	return l
}

// Clock is the target's time source for stream limits and notification
// timestamps; tests inject one to fire a stall at will.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// busyAfter is the work (instances visited plus leaves encoded) after
// which a read is big and must hold a busy-read slot to go on. A Get of a
// route or a peer stays far below it. A walk checks its budget every 256
// instances, so a read past busyAfter takes its slot at its first check:
// at 1,024, each of ten readers looping a big Get walked its first
// thousand units beside the Sets, on a thread at the daemon's priority
// and past the write gate, and in a trace those walks ran 0.6 ms of each
// Set slower than 1 ms (BENCHMARKS.md, issue 11).
const busyAfter = 128

// readCost meters one read: it stops the read when the caller's deadline
// passes or its connection ends, when a Get outgrows its budget, and
// makes a big read take its turn on the server's busy-read slots.
type readCost struct {
	ctx    context.Context
	busy   chan struct{} // the server's busy-read slots
	gate   *writeGate
	clock  Clock       // bounds a response's hold on the slot (sendturn.go)
	pause  *time.Timer // bounds a wait at gate
	held   bool
	low    lowThread // the read's thread, lowered while it holds a slot (threadprio.go)
	get    bool      // a Get, with budgets
	lim    Limits
	leaves int
	visits int // of walks that ended
	walk   int // of the walk in progress
	work   int
}

func (s *Server) newCost(ctx context.Context, get bool) *readCost {
	return &readCost{ctx: ctx, busy: s.busy, gate: s.gate, clock: s.clock, get: get, lim: s.lim}
}

// stepAside waits, holding its slot, until the Sets in flight are done
// (idle closes), for at most maxWritePause.
func (c *readCost) stepAside(idle <-chan struct{}) error {
	if c.pause == nil {
		c.pause = time.NewTimer(maxWritePause)
	} else {
		c.pause.Reset(maxWritePause)
	}
	defer c.pause.Stop()
	select {
	case <-idle:
	case <-c.pause.C:
	case <-c.ctx.Done():
		return status.FromContextError(c.ctx.Err()).Err()
	}
	return nil
}

// beforeSend steps aside for the Sets in flight, as check does, before a
// big read hands its response to the transport, whose write of it takes
// a core too.
func (c *readCost) beforeSend() error {
	if !c.held {
		return nil
	}
	if idle, writing := c.gate.writing(); writing {
		return c.stepAside(idle)
	}
	return nil
}

// release gives back the busy-read slot, if the read took one, and
// raises its thread back. It runs on the read's goroutine, which lowered
// the thread, also after keepForSend passed the slot on.
func (c *readCost) release() {
	c.low.restore()
	if c.held {
		<-c.busy
		c.held = false
	}
}

// endWalk closes the count of one walk's instances.
func (c *readCost) endWalk() {
	c.visits += c.walk
	c.walk = 0
}

// visited is a tree.WalkOpts.Visit: n instances of the current walk so
// far.
func (c *readCost) visited(n int) error {
	c.work += n - c.walk
	c.walk = n
	if c.get && c.visits+n > c.lim.GetVisits {
		return status.Errorf(codes.ResourceExhausted,
			"the request walks more than %d instances (the limit on one Get); narrow or merge its paths", c.lim.GetVisits)
	}
	return c.check()
}

// leaf counts one leaf returned; it reports whether the read may go on,
// keeping the reason in err.
func (c *readCost) leaf() error {
	c.leaves++
	c.work++
	if c.get && c.leaves > c.lim.GetLeaves {
		return status.Errorf(codes.ResourceExhausted,
			"the request selects more than %d leaves (the limit on one Get); narrow its paths, or use Subscribe ONCE, which streams", c.lim.GetLeaves)
	}
	if c.work&1023 == 0 {
		return c.check()
	}
	return nil
}

// check stops a read whose caller went away and, once the read is big,
// waits for a busy-read slot. A big read also yields the processor at
// every check, so a Set's goroutines, woken while all processors run
// readers, wait for the next check (tens of microseconds), not for the
// scheduler to preempt a reader (10 ms); while a Set is in flight it
// steps aside until the Set is done (writegate.go).
func (c *readCost) check() error {
	if err := c.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if c.work < busyAfter {
		return nil
	}
	if c.held {
		if idle, writing := c.gate.writing(); writing {
			return c.stepAside(idle)
		}
		runtime.Gosched()
		return nil
	}
	select {
	case c.busy <- struct{}{}:
		c.held = true
		c.low.lower()
		return nil
	case <-c.ctx.Done():
		return status.FromContextError(c.ctx.Err()).Err()
	}
}
