// Package segment is the VPP governance segment over mmap (see package shm
// for the contract and the layout): the single Writer the daemon uses and
// the Reader the plugin's side (and the tests) use, with the seqlock
// protocol package shm describes. Kernel access goes through
// shm/internal/shmsys.
package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/internal/shmsys"
)

// Option configures Open.
type Option func(*options)

type options struct {
	log  *slog.Logger
	perm os.FileMode
	now  func() time.Time
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPerm sets the permissions of a newly created segment (default 0644:
// the plugin usually runs as another user and only reads).
func WithPerm(p os.FileMode) Option { return func(o *options) { o.perm = p } }

// withClock replaces the wall clock, for tests.
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Writer is the single writer of a governance segment. Its methods are safe
// for concurrent use.
type Writer struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex // serialises Set and Close; the seqlock has one writer
	f      *os.File   // holds the flock for the Writer's lifetime
	mem    []byte
	w      words
	closed bool
}

// Open creates the segment at path, or adopts an existing one and keeps its
// current state. It takes an exclusive lock on the file: while this Writer is
// open, a second Open of the same segment (from any process) fails with
// ErrWriterBusy. A segment with a bad header is refused, never rewritten;
// remove the file to start over.
func Open(path string, opts ...Option) (*Writer, error) {
	o := options{log: slog.New(slog.DiscardHandler), perm: 0o644, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	// Two rounds: if another writer publishes the file between our failed
	// open and our publish, we adopt theirs (and then meet their lock).
	for range 2 {
		f, err := shmsys.Open(path, true)
		if errors.Is(err, os.ErrNotExist) {
			w, err := create(path, o)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return w, err
		}
		if err != nil {
			return nil, fmt.Errorf("open segment: %w", err)
		}
		return adopt(path, f, o)
	}
	return nil, fmt.Errorf("open segment %s: %w", path, shm.ErrWriterBusy)
}

func create(path string, o options) (*Writer, error) {
	f, err := shmsys.CreateTemp(shmsys.Dir(path), int64(shm.SegmentSize), o.perm)
	if err != nil {
		return nil, err
	}
	if err := shmsys.Lock(f); err != nil {
		shmsys.Discard(f)
		return nil, err
	}
	mem, err := shmsys.Map(f, int(shm.SegmentSize), true)
	if err != nil {
		shmsys.Discard(f)
		return nil, err
	}
	// The header is complete before the file has its real name, so a
	// reader never sees a half-initialised segment.
	initHeader(mem, os.Getpid())
	if err := shmsys.Publish(f, path); err != nil {
		_ = shmsys.Unmap(mem)
		_ = f.Close()
		return nil, err
	}
	o.log.Info("created governance segment", "path", path, "size", shm.SegmentSize)
	return &Writer{path: path, log: o.log, now: o.now, f: f, mem: mem, w: wordsOf(mem)}, nil
}

func adopt(path string, f *os.File, o options) (_ *Writer, err error) {
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := shmsys.Lock(f); err != nil {
		if errors.Is(err, shmsys.ErrLocked) {
			return nil, &shm.SegmentError{Path: path, Detail: "locked by a running writer", Err: shm.ErrWriterBusy}
		}
		return nil, err
	}
	mem, err := mapValidated(path, f, true)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, log: o.log, now: o.now, f: f, mem: mem, w: wordsOf(mem)}
	if seq := loadSeq(w.w); seq%2 == 1 {
		// The previous writer died between its two sequence bumps. Its
		// fields may be torn; republish them with a fresh check word so
		// readers stop spinning. The level kept is the last one stored.
		lvl, flags := w.w.fields()
		w.w.write(lvl, flags, uint64(o.now().UnixNano()))
		o.log.Warn("repaired interrupted write in governance segment", "path", path, "sequence", seq, "level", lvl)
	}
	st, err := w.w.read()
	if err != nil {
		_ = shmsys.Unmap(mem)
		return nil, &shm.SegmentError{Path: path, Detail: "adopting state", Err: err}
	}
	w.storePID()
	o.log.Info("adopted governance segment", "path", path, "level", st.Level, "sequence", st.Sequence)
	return w, nil
}

// mapValidated maps an open segment file and checks its header. It maps only
// the header first, so a truncated or oversized file is reported, not mapped.
func mapValidated(path string, f *os.File, write bool) ([]byte, error) {
	size, err := shmsys.Size(f)
	if err != nil {
		return nil, err
	}
	if size < int64(shm.HeaderSize) {
		return nil, validate(path, nil, size)
	}
	hdr, err := shmsys.Map(f, int(shm.HeaderSize), false)
	if err != nil {
		return nil, err
	}
	verr := validate(path, hdr, size)
	_ = shmsys.Unmap(hdr)
	if verr != nil {
		return nil, verr
	}
	return shmsys.Map(f, int(shm.SegmentSize), write)
}

// Set publishes cfg. It is idempotent: when the segment already holds cfg it
// writes nothing and the sequence does not move, so the plugin sees no
// transition.
func (w *Writer) Set(ctx context.Context, cfg shm.Config) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set governance state: %w", err)
	}
	if cfg.Level < 1 || cfg.Level > 5 {
		return fmt.Errorf("set governance state: level %d: %w", cfg.Level, shm.ErrInvalidLevel)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("set governance state: %w", shm.ErrClosed)
	}
	// Compare with the segment itself, not a cached copy: it is the state
	// the plugin acts on.
	lvl, flags := w.w.fields()
	if loadSeq(w.w)%2 == 0 && lvl == uint32(cfg.Level) && flags == cfg.Flags {
		return nil
	}
	seq := w.w.write(uint32(cfg.Level), cfg.Flags, uint64(w.now().UnixNano()))
	w.log.Debug("published governance state", "level", cfg.Level, "flags", cfg.Flags, "sequence", seq)
	return nil
}

// State reads back what the segment holds.
func (w *Writer) State() (shm.State, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return shm.State{}, fmt.Errorf("read governance state: %w", shm.ErrClosed)
	}
	return w.w.read()
}

// Path is the segment's file name.
func (w *Writer) Path() string { return w.path }

// Close unmaps the segment and releases the writer lock. The file stays, so
// the plugin keeps the last published level and the next writer adopts it.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return errors.Join(shmsys.Unmap(w.mem), w.f.Close())
}

func (w *Writer) storePID() { storeU32(w.w.pid, uint32(os.Getpid())) }
