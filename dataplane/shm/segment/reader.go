package segment

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/internal/shmsys"
)

// Reader maps a segment read-only and polls it the way the VPP plugin does.
// Poll and Sequence may be called from any goroutine; Close must not race
// with them.
type Reader struct {
	path   string
	f      *os.File
	mem    []byte
	w      words
	closed atomic.Bool
}

// OpenReader maps an existing segment read-only after checking its header.
// It takes no lock: any number of readers may poll while the writer writes.
func OpenReader(path string) (*Reader, error) {
	f, err := shmsys.Open(path, false)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	mem, err := mapValidated(path, f, false)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Reader{path: path, f: f, mem: mem, w: wordsOf(mem)}, nil
}

// Sequence is a single atomic load of the seqlock counter: the cheap
// "did anything change" test a busy poller spins on before calling Poll.
func (r *Reader) Sequence() uint64 { return loadSeq(r.w) }

// Poll returns a consistent snapshot of the state. It returns ErrTornState
// if the check word does not match (a protocol violation or a foreign
// writer), and ErrWriteStuck if a write stays in progress for a very long
// time (the writer died mid-write).
func (r *Reader) Poll() (shm.State, error) {
	if r.closed.Load() {
		return shm.State{}, fmt.Errorf("poll governance state: %w", shm.ErrClosed)
	}
	st, err := r.w.read()
	if err != nil {
		return shm.State{}, fmt.Errorf("poll governance state %s: %w", r.path, err)
	}
	return st, nil
}

// Watch polls every interval and sends each state whose sequence differs
// from the last one sent, starting with the current state. Errors are sent
// as well, so the caller sees a broken segment instead of silence. The
// channel closes when ctx is done.
func (r *Reader) Watch(ctx context.Context, interval time.Duration) <-chan WatchEvent {
	ch := make(chan WatchEvent, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		last := ^uint64(0) // no real sequence is odd-and-max, so the first poll is always sent
		for {
			if seq := r.Sequence(); seq != last {
				st, err := r.Poll()
				if err == nil {
					last = st.Sequence
				}
				select {
				case ch <- WatchEvent{State: st, Err: err}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// WatchEvent is one observation sent by Watch.
type WatchEvent struct {
	State shm.State
	Err   error
}

// SpinUntilChanged busy-polls the sequence until it differs from seq, then
// returns the new state. It is what a poll-mode plugin thread does; it gives
// up when ctx is done. Keep it on a dedicated, locked OS thread.
func (r *Reader) SpinUntilChanged(ctx context.Context, seq uint64) (shm.State, error) {
	for i := 0; ; i++ {
		if s := r.Sequence(); s != seq && s%2 == 0 {
			return r.Poll()
		}
		if i%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return shm.State{}, fmt.Errorf("wait for governance state: %w", err)
			}
		}
	}
}

// Close unmaps the segment.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return errors.Join(shmsys.Unmap(r.mem), r.f.Close())
}
