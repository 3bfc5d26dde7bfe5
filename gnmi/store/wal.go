package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The write-ahead log makes a commit durable with one write and one
// fdatasync. bbolt needs two syncs per transaction (pages, then the meta
// page), which made the durable commit most of a gNMI Set's latency; the
// log now lives in segment files and bbolt keeps only snapshots and the
// metas as of each snapshot.
//
// A segment is preallocated (fallocate) so that appending to it does not
// change the file's size or allocate blocks: fdatasync then flushes the
// data and at most marks the extent written. Records are framed as
//
//	u32 payload length | u32 CRC-32C of payload | payload
//
// little-endian. A zero length is the end of the written part; a record
// whose CRC fails is a write torn by a crash, which was never
// acknowledged, and ends the segment too. Every Open starts a new segment,
// so an old segment's tail is never written again.

// segmentSize is the preallocated size of a segment: a little more than
// the log a compaction waits for, within 1..64 MiB. A record that does not
// fit in what is left starts a new segment (as big as it needs).
func segmentSize(compactAt int64) int64 {
	return min(max(compactAt+compactAt/4, 1<<20), 64<<20)
}

const (
	walHeader = 8

	walCommit byte = 1 // a config commit's log record, with an optional meta change
	walMeta   byte = 2 // a PutMeta
	// walCommitAnnotated is walCommit with the commit's annotation
	// (Options.Annotate) after the record.
	walCommitAnnotated byte = 3

	metaNone byte = 0
	metaPut  byte = 1
	metaDel  byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fdatasync is unix.Fdatasync; tests replace it to make a sync fail.
var fdatasync = unix.Fdatasync

// wal is the segment being written. It is guarded by Store.walMu.
type wal struct {
	dir  string
	grow int64  // size of the next segment
	id   uint64 // segment number, in the file name
	f    *os.File
	off  int64 // where the next record goes
	size int64 // preallocated size
	buf  []byte
}

func segmentName(id uint64) string { return fmt.Sprintf("wal-%016x.log", id) }

// segments lists the segment numbers in dir, in order.
func segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list log segments: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "wal-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "wal-"), ".log"), 16, 64)
		if err != nil {
			continue // not ours
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// openSegment creates segment id, preallocates at least size bytes and
// makes its directory entry durable.
func openSegment(dir string, id uint64, size int64) (*wal, error) {
	path := filepath.Join(dir, segmentName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		// Filesystems without fallocate: a sparse file of that size;
		// appends then allocate blocks as they go, slower to sync but
		// just as correct.
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("size log segment: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sync log segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return &wal{dir: dir, id: id, f: f, size: size, grow: size}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open store dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync store dir: %w", err)
	}
	return nil
}

// append writes one record durably. When it does not fit, the record goes
// to a new segment, returned as next (the caller switches to it and
// closes the old one).
func (w *wal) append(payload []byte) (next *wal, err error) {
	need := int64(walHeader + len(payload))
	if w.off+need > w.size {
		n, err := openSegment(w.dir, w.id+1, max(w.grow, need+walHeader))
		if err != nil {
			return nil, err
		}
		n.grow = w.grow
		if _, err := n.append(payload); err != nil {
			n.close()
			return nil, err
		}
		return n, nil
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf[:0], uint32(len(payload)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, crc32.Checksum(payload, castagnoli))
	w.buf = append(w.buf, payload...)
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return nil, fmt.Errorf("write log: %w", err)
	}
	if err := fdatasync(int(w.f.Fd())); err != nil {
		// The record's fate on disk is unknown: never write after it.
		w.off = w.size
		return nil, fmt.Errorf("%w: %w", errLogSync, err)
	}
	w.off += need
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not keep a bulk commit's buffer
	}
	return nil, nil
}

func (w *wal) close() error {
	if w == nil || w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// readSegment calls fn with each intact record of segment id, in order,
// and stops at the end of the written part or a torn record; it returns
// where the intact records end.
func readSegment(dir string, id uint64, fn func(payload []byte) error) (int64, error) {
	f, err := os.Open(filepath.Join(dir, segmentName(id)))
	if err != nil {
		return 0, fmt.Errorf("open log segment: %w", err)
	}
	defer f.Close()
	// Read record by record: the preallocated rest of the file reads as
	// zeros, and reading all of it would cost 64 MiB per segment.
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat log segment: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var end int64
	var hdr [walHeader]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return end, nil
			}
			return end, fmt.Errorf("read log segment %s: %w", segmentName(id), err)
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		if n == 0 || end+walHeader+int64(n) > st.Size() {
			return end, nil // the end, or a torn header promising more than the file has
		}
		if int(n) > cap(payload) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return end, nil // torn: the file ends inside the record
			}
			return end, fmt.Errorf("read log segment %s: %w", segmentName(id), err)
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return end, nil
		}
		if err := fn(payload); err != nil {
			return end, fmt.Errorf("log segment %s: %w", segmentName(id), err)
		}
		end += int64(walHeader) + int64(n)
	}
}

// trimSegment gives back the preallocated space after a finished
// segment's records (it is never written again), or removes the segment
// when it holds none: restarts must not pile up empty 64 MiB files.
func trimSegment(dir string, id uint64, end int64) error {
	path := filepath.Join(dir, segmentName(id))
	if end == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove empty log segment: %w", err)
		}
		return nil
	}
	if err := os.Truncate(path, end); err != nil {
		return fmt.Errorf("trim log segment: %w", err)
	}
	return nil
}

// encodeCommitRecord frames a commit's log record with the meta change
// stored in the same durable write.
func encodeCommitRecord(seq uint64, rec []byte, metaKey string, meta, ann []byte) []byte {
	b := make([]byte, 0, 1+8+4+len(rec)+4+len(ann)+2+len(metaKey)+1+4+len(meta))
	kind := walCommit
	if ann != nil {
		kind = walCommitAnnotated
	}
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
	b = append(b, rec...)
	if ann != nil {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ann)))
		b = append(b, ann...)
	}
	return appendMeta(b, metaKey, meta)
}

func encodeMetaRecord(key string, val []byte) []byte {
	return appendMeta(append(make([]byte, 0, 1+2+len(key)+1+4+len(val)), walMeta), key, val)
}

func appendMeta(b []byte, key string, val []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	switch {
	case key == "":
		return append(b, metaNone)
	case val == nil:
		return append(b, metaDel)
	}
	b = append(b, metaPut)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	return append(b, val...)
}

var errBadRecord = errors.New("malformed log record")

// errLogSync: fdatasync of the log failed, so a record may or may not be
// on disk.
var errLogSync = errors.New("sync log")

// walRecord is a decoded payload.
type walRecord struct {
	kind    byte
	seq     uint64
	rec     []byte
	ann     []byte
	metaKey string
	metaOp  byte
	meta    []byte
}

func decodeWALRecord(p []byte) (walRecord, error) {
	var r walRecord
	if len(p) < 1 {
		return r, errBadRecord
	}
	r.kind, p = p[0], p[1:]
	switch r.kind {
	case walCommit, walCommitAnnotated:
		if len(p) < 12 {
			return r, errBadRecord
		}
		r.seq = binary.LittleEndian.Uint64(p)
		n := int(binary.LittleEndian.Uint32(p[8:]))
		p = p[12:]
		if n > len(p) {
			return r, errBadRecord
		}
		r.rec, p = p[:n], p[n:]
		if r.kind == walCommitAnnotated {
			if len(p) < 4 {
				return r, errBadRecord
			}
			n := int(binary.LittleEndian.Uint32(p))
			if n > len(p)-4 {
				return r, errBadRecord
			}
			r.ann, p = p[4:4+n], p[4+n:]
		}
	case walMeta:
	default:
		return r, fmt.Errorf("%w: kind %d", errBadRecord, r.kind)
	}
	if len(p) < 3 {
		return r, errBadRecord
	}
	kl := int(binary.LittleEndian.Uint16(p))
	if 2+kl+1 > len(p) {
		return r, errBadRecord
	}
	r.metaKey, r.metaOp, p = string(p[2:2+kl]), p[2+kl], p[3+kl:]
	if r.metaOp == metaPut {
		if len(p) < 4 {
			return r, errBadRecord
		}
		n := int(binary.LittleEndian.Uint32(p))
		if n > len(p)-4 {
			return r, errBadRecord
		}
		r.meta = p[4 : 4+n]
	}
	return r, nil
}
