package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrSync: fdatasync of the log failed, so whether the record reached
// the disk is unknown. The Log refuses every later write: no record may
// be acknowledged after one of unknown fate, and only a restart, which
// replays what the disk holds, settles it.
var ErrSync = errors.New("sync log")

// fdatasync is unix.Fdatasync; tests replace it to make a sync fail.
var fdatasync = unix.Fdatasync

// SetSyncForTest replaces fdatasync until the returned function is
// called (tests of the store's fail-stop rule).
func SetSyncForTest(fn func(fd int) error) (restore func()) {
	fdatasync = fn
	return func() { fdatasync = unix.Fdatasync }
}

// Options tune a Log.
type Options struct {
	// SegmentSize is how much each new segment preallocates; a record
	// that does not fit in what is left starts a segment as big as it
	// needs.
	SegmentSize int64
	// Logger gets a warning whenever a segment could not be preallocated.
	Logger *slog.Logger
	// Base is the first segment the store's snapshot does not cover;
	// every segment records it (see SetBase).
	Base uint64
}

// Log appends records to the newest segment. It is not safe for
// concurrent use; the store serialises appends.
type Log struct {
	dir  string
	o    Options
	seg  *segment
	last Link // the newest segment holding records, and its end
	err  error
	hdr  [RecordHeaderSize]byte
}

type segment struct {
	id     uint64
	f      *os.File
	off    int64 // where the next record goes
	size   int64
	sparse bool
}

// Create starts segment id (which must not exist) after prev, the newest
// segment holding records (End 0: none), and returns the Log writing it.
func Create(dir string, id uint64, prev Link, o Options) (*Log, error) {
	if o.SegmentSize < HeaderSize+RecordHeaderSize+1 {
		return nil, fmt.Errorf("create log: segment size %d is too small", o.SegmentSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{dir: dir, o: o, last: prev}
	seg, err := l.create(id, o.SegmentSize)
	if err != nil {
		return nil, err
	}
	l.seg = seg
	return l, nil
}

// create makes segment id durable: file, size, header and directory
// entry. On failure it removes what it made, so that a later attempt can
// make the same segment.
func (l *Log) create(id uint64, size int64) (*segment, error) {
	path := filepath.Join(l.dir, Name(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	s := &segment{id: id, f: f, off: HeaderSize, size: size}
	ferr := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if ferr != nil {
		// No preallocation (a filesystem without fallocate, or not enough
		// free space for the whole segment): a sparse file of that size.
		// Appends then allocate blocks as they go, which makes syncs
		// slower and can fail with no space left on the device.
		if err := f.Truncate(size); err != nil {
			return fail(fmt.Errorf("size log segment: %w", err))
		}
		s.sparse = true
	}
	if _, err := f.WriteAt(header{id: id, size: size, prev: l.last, base: l.o.Base}.encode(), 0); err != nil {
		return fail(fmt.Errorf("write log segment header: %w", err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync log segment: %w", err))
	}
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	if s.sparse {
		l.o.Logger.Warn("write-ahead log segment is sparse: preallocation failed, so appends allocate disk blocks as they go and fail when the disk is full",
			"segment", path, "size", size, "err", ferr)
	}
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open log dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync log dir: %w", err)
	}
	return nil
}

// Append writes one record durably: when it returns nil the record is on
// disk. A record that does not fit in the current segment goes to a new
// one. On a write error nothing is acknowledged and the next record is
// written where this one would have gone, over whatever part of it
// reached the file; after a sync error (ErrSync) the Log refuses every
// later write.
func (l *Log) Append(payload []byte) error {
	if l.err != nil {
		return l.err
	}
	if l.seg == nil {
		return errors.New("append to log: closed")
	}
	if len(payload) == 0 {
		return errors.New("append to log: empty record")
	}
	need := int64(RecordHeaderSize + len(payload))
	if l.seg.off+need > l.seg.size {
		if err := l.rotate(max(l.o.SegmentSize, HeaderSize+need)); err != nil {
			return err
		}
	}
	s := l.seg
	frameRecord(l.hdr[:], s.id, s.off, payload)
	if err := writeAt(s.f, s.off, l.hdr[:], payload); err != nil {
		// Nothing was synced and s.off stays: the next record overwrites
		// what part of this one reached the file. Left over bytes past
		// the next record are no record (each names its own offset and
		// segment), so a restart sees at most a torn tail.
		return fmt.Errorf("append to log: %w", err)
	}
	if err := fdatasync(int(s.f.Fd())); err != nil {
		l.err = fmt.Errorf("log stopped after a failed sync of %s: %w: %w", Name(s.id), ErrSync, err)
		return l.err
	}
	s.off += need
	l.last = Link{ID: s.id, End: s.off}
	return nil
}

// writeAt writes hdr and payload at off with one system call (two for a
// short write): the payload, megabytes for a bulk commit, is not copied.
func writeAt(f *os.File, off int64, hdr, payload []byte) error {
	iov := [][]byte{hdr, payload}
	for len(iov) > 0 {
		n, err := unix.Pwritev(int(f.Fd()), iov, off)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return &os.PathError{Op: "write", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "write", Path: f.Name(), Err: io.ErrShortWrite}
		}
		off += int64(n)
		for len(iov) > 0 && n >= len(iov[0]) {
			n -= len(iov[0])
			iov = iov[1:]
		}
		if len(iov) > 0 {
			iov[0] = iov[0][n:]
		}
	}
	return nil
}

// Rotate starts a new segment, so that every record from now on goes
// after the returned segment number (a compaction's snapshot covers the
// segments before it).
func (l *Log) Rotate() (uint64, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.seg == nil {
		return 0, errors.New("rotate log: closed")
	}
	if err := l.rotate(l.o.SegmentSize); err != nil {
		return 0, err
	}
	return l.seg.id, nil
}

// rotate switches to a new segment of size bytes. The old one is never
// written again; its successor's header records where its records end.
//
// The old segment is cut back to its records (best effort): every
// segment but the newest is then shorter than it was made, so if the
// newest file goes missing, the one before it no longer passes for the
// newest (Replay checks the newest keeps its size).
func (l *Log) rotate(size int64) error {
	next, err := l.create(l.seg.id+1, size)
	if err != nil {
		return err
	}
	_ = l.seg.f.Truncate(l.seg.off)
	_ = l.seg.f.Close()
	l.seg = next
	return nil
}

// SetBase records that a snapshot now covers every segment below first;
// segments made from now on say so.
func (l *Log) SetBase(first uint64) { l.o.Base = max(l.o.Base, first) }

// Position returns the segment being written and where its next record
// goes.
func (l *Log) Position() (id uint64, off int64) { return l.seg.id, l.seg.off }

// Sparse reports whether the segment being written could not be
// preallocated.
func (l *Log) Sparse() bool { return l.seg != nil && l.seg.sparse }

// Close closes the segment being written.
func (l *Log) Close() error {
	if l == nil || l.seg == nil {
		return nil
	}
	err := l.seg.f.Close()
	l.seg = nil
	if err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}
