package ledger

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// File names in a ledger directory.
const (
	LogFile    = "log"
	HashesFile = "hashes"
)

// allocChunk is how much the log file grows by when it fills up.
const allocChunk = 16 << 20

// fdatasync is unix.Fdatasync; tests replace it to make a sync fail.
var fdatasync = unix.Fdatasync

// Options configure Open.
type Options struct {
	// Verifier checks the log's checkpoints; its name is the log's origin.
	// Required.
	Verifier note.Verifier
	// Signer, when set, signs the checkpoints Flush writes (the node's
	// notary); without it only FlushNote can end a group (the receiver,
	// which stores the node's own checkpoints).
	Signer note.Signer
	// MinSize is a size the log is known to have reached durably (shipped
	// upstream, recorded by the store); a shorter log is ErrRolledBack.
	MinSize int64
	Logger  *slog.Logger
	// Now is the clock for checkpoint times (tests).
	Now func() time.Time
}

// Ledger is an open log. Append and the Flush methods are for one writer
// at a time; every read method is safe to call concurrently with them and
// sees only durable entries.
type Ledger struct {
	dir  string
	path string
	opt  Options
	log  *slog.Logger

	mu      sync.RWMutex // guards the durable view below
	f       *os.File
	hf      *os.File
	size    int64
	cp      Checkpoint
	offsets []int64
	lens    []uint32
	cps     []cpRef
	hashN   int64 // stored hashes in hf
	closed  bool

	wmu      sync.Mutex // the writer
	off      int64      // where the next group goes
	alloc    int64      // the file's size
	pend     []byte     // entry frames of the open group
	pendOff  []int64    // their payload offsets within pend
	pendLen  []uint32
	pendHash []tlog.Hash // stored hashes added by the pending entries
	failed   error
}

// Open opens the ledger in dir, creating it when absent, and recovers it:
// a torn final group is zeroed; corruption, tampering or a rollback below
// MinSize is refused with nothing changed.
func Open(dir string, o Options) (*Ledger, error) {
	if o.Verifier == nil {
		return nil, errors.New("open notary log: no verifier")
	}
	if o.Signer != nil && o.Signer.Name() != o.Verifier.Name() {
		return nil, fmt.Errorf("open notary log: signer %q and verifier %q differ", o.Signer.Name(), o.Verifier.Name())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create notary log dir: %w", err)
	}
	l := &Ledger{dir: dir, path: filepath.Join(dir, LogFile), opt: o, log: o.Logger}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	var err error
	if l.f, err = os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open notary log: %w", err)
	}
	if l.hf, err = os.OpenFile(filepath.Join(dir, HashesFile), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open notary log hashes: %w", err)
	}
	var hashes memHashes
	res, err := scanLog(l.path, l.f, visitor{entry: func(i int64, p []byte) error { return hashes.add(i, p) }})
	if err != nil {
		return nil, fmt.Errorf("open notary log: %w", err)
	}
	if res.empty {
		if err := l.create(); err != nil {
			return nil, err
		}
		res.end = l.off
	} else if res.origin != o.Verifier.Name() {
		return nil, fmt.Errorf("open notary log: it belongs to %q, the key is %q", res.origin, o.Verifier.Name())
	}
	size := int64(len(res.offsets))
	hashes = hashes[:tlog.StoredHashCount(size)] // drop a torn group's
	if len(res.cps) > 0 {
		last := res.cps[len(res.cps)-1]
		msg := make([]byte, last.n-frameOverhead)
		if _, err := l.f.ReadAt(msg, last.off+frameOverhead); err != nil {
			return nil, fmt.Errorf("open notary log: read checkpoint: %w", err)
		}
		cp, err := ParseCheckpoint(msg, o.Verifier)
		if err != nil {
			return nil, fmt.Errorf("open notary log %s: checkpoint at offset %d: %w", l.path, last.off, err)
		}
		h, err := tlog.TreeHash(size, &hashes)
		if err != nil {
			return nil, fmt.Errorf("open notary log: %w", err)
		}
		if h != cp.Hash {
			return nil, fmt.Errorf("open notary log %s: %w: %d entries hash to %s, the checkpoint signed %s",
				l.path, ErrTampered, size, h, cp.Hash)
		}
		l.cp = cp
	}
	if size < o.MinSize {
		return nil, fmt.Errorf("open notary log %s: %w: it holds %d entries, but %d were durable before (restored from an older copy, or a durable tail was lost)",
			l.path, ErrRolledBack, size, o.MinSize)
	}
	if err := l.syncHashes(hashes); err != nil {
		return nil, err
	}
	st, err := l.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat notary log: %w", err)
	}
	l.alloc = st.Size()
	if res.torn {
		o.Logger.Warn("notary log: dropped a torn final write (never acknowledged)", "file", l.path,
			"offset", res.end, "bytes", res.tornTo-res.end, "why", res.tornWhy)
		if err := l.zero(res.end, res.tornTo); err != nil {
			return nil, err
		}
	}
	l.off = max(l.off, res.end)
	l.size, l.offsets, l.lens, l.cps, l.hashN = size, res.offsets, res.lens, res.cps, int64(len(hashes))
	ok = true
	return l, nil
}

// create writes the header of a new log.
func (l *Ledger) create() error {
	b := appendFrame(nil, frameHeader, []byte(headerMagic+l.opt.Verifier.Name()))
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("create notary log: %w", err)
	}
	if err := unix.Fallocate(int(l.f.Fd()), 0, 0, allocChunk); err != nil {
		if err := l.f.Truncate(allocChunk); err != nil {
			return fmt.Errorf("size notary log: %w", err)
		}
	}
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("create notary log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync notary log: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.off = int64(len(b))
	return nil
}

// syncHashes makes the hashes file hold exactly hs, rewriting only what
// differs.
func (l *Ledger) syncHashes(hs memHashes) error {
	const chunk = 4096
	want := make([]byte, 0, chunk*tlog.HashSize)
	have := make([]byte, chunk*tlog.HashSize)
	for i := 0; i < len(hs); i += chunk {
		want = want[:0]
		for _, h := range hs[i:min(i+chunk, len(hs))] {
			want = append(want, h[:]...)
		}
		n, err := l.hf.ReadAt(have[:len(want)], int64(i)*tlog.HashSize)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read notary log hashes: %w", err)
		}
		if n == len(want) && string(have[:n]) == string(want) {
			continue
		}
		if _, err := l.hf.WriteAt(want, int64(i)*tlog.HashSize); err != nil {
			return fmt.Errorf("write notary log hashes: %w", err)
		}
	}
	if err := l.hf.Truncate(int64(len(hs)) * tlog.HashSize); err != nil {
		return fmt.Errorf("trim notary log hashes: %w", err)
	}
	return nil
}

// zero overwrites [from, to) with zeros and syncs, so the next group
// written there is followed by zeros only.
func (l *Ledger) zero(from, to int64) error {
	if to <= from {
		return nil
	}
	if _, err := l.f.WriteAt(make([]byte, to-from), from); err != nil {
		return fmt.Errorf("clear torn notary log tail: %w", err)
	}
	if err := fdatasync(int(l.f.Fd())); err != nil {
		return fmt.Errorf("sync notary log: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open notary log dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync notary log dir: %w", err)
	}
	return nil
}

// Origin is the log's name (its key's name).
func (l *Ledger) Origin() string { return l.opt.Verifier.Name() }

// Verifier returns the log's checkpoint verifier.
func (l *Ledger) Verifier() note.Verifier { return l.opt.Verifier }

// Path is the log file.
func (l *Ledger) Path() string { return l.path }

// Close closes the files; pending entries are dropped.
func (l *Ledger) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.closeFiles()
}

func (l *Ledger) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{l.f, l.hf} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}
