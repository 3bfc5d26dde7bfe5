// Package shmtest is a recording fake of the shm backend for posture engine
// tests: it keeps every Set call, applies the segment writer's idempotency rule,
// and can be told to fail.
package shmtest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/guildhouse-co/kedge/dataplane/shm"
)

// ErrInjected is returned by Set after Fail, unless another error was given.
var ErrInjected = errors.New("shmtest: injected failure")

// Writer records calls. The zero value is ready to use; it starts with no
// level published, like a fresh segment.
type Writer struct {
	mu      sync.Mutex
	calls   []shm.Config
	state   shm.Config
	writes  int
	failN   int
	failErr error
	closed  bool
}

// Set records cfg and, unless a failure is pending, applies it. Like the real
// writer it rejects levels outside 1..5 and counts a write only when the
// state changes.
func (w *Writer) Set(ctx context.Context, cfg shm.Config) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, cfg)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set governance state: %w", err)
	}
	if w.closed {
		return fmt.Errorf("set governance state: %w", shm.ErrClosed)
	}
	if w.failN > 0 {
		w.failN--
		return fmt.Errorf("set governance state: %w", w.failErr)
	}
	if cfg.Level < 1 || cfg.Level > 5 {
		return fmt.Errorf("set governance state: level %d: %w", cfg.Level, shm.ErrInvalidLevel)
	}
	if cfg != w.state {
		w.state = cfg
		w.writes++
	}
	return nil
}

// Fail makes the next n Set calls fail with err (ErrInjected if nil) without
// changing the state.
func (w *Writer) Fail(n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	w.failN, w.failErr = n, err
}

// Calls returns a copy of every Config passed to Set, in order.
func (w *Writer) Calls() []shm.Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]shm.Config(nil), w.calls...)
}

// State is the last successfully applied Config (zero if none).
func (w *Writer) State() shm.Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// Writes counts the Set calls that changed the state, i.e. the sequence
// bumps the real segment would have made.
func (w *Writer) Writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// Close marks the fake closed; later Sets fail with shm.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return nil
}
