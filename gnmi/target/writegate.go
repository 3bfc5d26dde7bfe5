package target

import (
	"sync"
	"time"
)

// writeGate lets big reads step aside while a Set is in flight. A read
// past its first thousand instances holds a busy-read slot and keeps a
// processor, and the thread under it, busy for as long as it runs. On a
// two-core node the gRPC transport's writes of the readers' responses
// keep the other core busy too, and the thread that comes back from a
// Set's fdatasync then waits for the kernel to give it a core (1-3 ms
// between threads of equal priority), which was the readers' Set p99.
// At each budget check a big read waits until the Sets in flight are
// done, for at most maxWritePause, so a stream of Sets slows big reads
// but never stops them.
type writeGate struct {
	mu     sync.Mutex
	active int
	idle   chan struct{} // closed while no Set is in flight
}

// maxWritePause bounds one wait of a big read for the Sets in flight.
const maxWritePause = 2 * time.Millisecond

func newWriteGate() *writeGate {
	g := &writeGate{idle: make(chan struct{})}
	close(g.idle)
	return g
}

// begin records a Set in flight; end, its end.
func (g *writeGate) begin() {
	g.mu.Lock()
	if g.active == 0 {
		g.idle = make(chan struct{})
	}
	g.active++
	g.mu.Unlock()
}

func (g *writeGate) end() {
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
}

// writing returns a channel closed once no Set is in flight, and whether
// one is now.
func (g *writeGate) writing() (<-chan struct{}, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.idle, g.active > 0
}
