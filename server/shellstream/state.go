package shellstream

import (
	"context"
	"slices"
	"sort"
	"sync"
)

// stateBook batches /kedge/sessions writes: lifecycle changes (grant,
// drain, posture change, close) are written at once, counters every
// StateInterval, and closed sessions are removed after RetainClosed or
// beyond MaxClosed, oldest first.
type stateBook struct {
	s    *Service
	kick chan struct{}

	mu     sync.Mutex
	dirty  map[string]*live
	closes []State // closed sessions not yet written
	shown  []State // closed sessions written and still shown, oldest first

	flushMu sync.Mutex
	counted map[string][4]uint64 // counters last written per live session
}

func newStateBook(s *Service) *stateBook {
	return &stateBook{s: s, kick: make(chan struct{}, 1), dirty: map[string]*live{}, counted: map[string][4]uint64{}}
}

// touch marks a live session's state as changed.
func (b *stateBook) touch(l *live) {
	if b.s.opts.State == nil {
		return
	}
	b.mu.Lock()
	b.dirty[l.id] = l
	b.mu.Unlock()
	poke(b.kick)
}

// closed records a session's final state.
func (b *stateBook) closed(st State) {
	if b.s.opts.State == nil {
		return
	}
	b.mu.Lock()
	delete(b.dirty, st.ID)
	b.closes = append(b.closes, st)
	b.mu.Unlock()
	poke(b.kick)
}

func (b *stateBook) run(ctx context.Context) {
	if b.s.opts.State == nil {
		return
	}
	for {
		tick := make(chan struct{})
		stop := b.s.clock.AfterFunc(b.s.opts.StateInterval, func() { close(tick) })
		select {
		case <-b.kick:
		case <-tick:
			b.countersDirty()
		case <-ctx.Done():
			stop()
			return
		}
		stop()
		b.flush(ctx)
	}
}

// countersDirty marks live sessions whose counters moved since written.
func (b *stateBook) countersDirty() {
	b.s.mu.Lock()
	all := make([]*live, 0, len(b.s.live))
	for _, l := range b.s.live {
		all = append(all, l)
	}
	b.s.mu.Unlock()
	b.flushMu.Lock()
	var moved []*live
	for _, l := range all {
		if b.counted[l.id] != l.counters() {
			moved = append(moved, l)
		}
	}
	b.flushMu.Unlock()
	b.mu.Lock()
	for _, l := range moved {
		b.dirty[l.id] = l
	}
	b.mu.Unlock()
}

func (l *live) counters() [4]uint64 {
	return [4]uint64{l.c.bytesIn.Load(), l.c.bytesOut.Load(), l.c.framesIn.Load(), l.c.framesOut.Load()}
}

// Flush writes pending session state now (the writer also does so on its
// own; tests and shutdown call this to be sure).
func (s *Service) Flush(ctx context.Context) error {
	if s.opts.State == nil {
		return nil
	}
	s.state.countersDirty()
	return s.state.flush(ctx)
}

func (b *stateBook) flush(ctx context.Context) error {
	if b.s.opts.State == nil {
		return nil
	}
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	dirty := b.dirty
	b.dirty = map[string]*live{}
	closes := b.closes
	b.closes = nil
	b.mu.Unlock()

	put := make([]State, 0, len(dirty)+len(closes))
	for _, l := range dirty {
		st := l.snapshot()
		if st.Status == StatusClosed {
			continue // its final state is among closes
		}
		put = append(put, st)
		b.counted[st.ID] = [4]uint64{st.BytesIn, st.BytesOut, st.FramesIn, st.FramesOut}
	}
	for _, st := range closes {
		delete(b.counted, st.ID)
	}
	put = append(put, closes...)
	sort.Slice(put, func(i, j int) bool { return put[i].ID < put[j].ID })

	// Retention of closed sessions. A closed session removed in the same
	// flush it closed in is still written first, then deleted, so
	// watchers see how it ended.
	shown := append(slices.Clone(b.shown), closes...)
	now := b.s.clock.Now()
	var del []string
	cut := 0
	for cut < len(shown) && (now.Sub(shown[cut].Closed) >= b.s.opts.RetainClosed || len(shown)-cut > b.s.opts.MaxClosed) {
		del = append(del, shown[cut].ID)
		cut++
	}
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	if err := b.s.opts.State.WriteSessions(ctx, put, del); err != nil {
		b.s.log.Warn("write session state", "err", err)
		// Write all of it again next time.
		b.mu.Lock()
		for id, l := range dirty {
			if _, ok := b.dirty[id]; !ok {
				b.dirty[id] = l
			}
		}
		b.closes = append(closes, b.closes...)
		b.mu.Unlock()
		return err
	}
	b.shown = append(b.shown[:0], shown[cut:]...)
	return nil
}
