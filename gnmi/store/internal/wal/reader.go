package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// window is how much of a segment the reader holds at a time: records
// are read from memory, not with a system call each.
const window = 1 << 20

// reader reads one segment file through a window of its bytes.
type reader struct {
	f    *os.File
	id   uint64
	size int64 // the file's size
	off  int64 // file offset of buf[0]
	buf  []byte
	mem  []byte
}

func newReader(f *os.File, id uint64, size int64) *reader {
	return &reader{f: f, id: id, size: size}
}

// bytes returns the n bytes at off (the caller checked they are in the
// file). The slice is valid until the next call.
func (r *reader) bytes(off int64, n int) ([]byte, error) {
	if off >= r.off && off+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off:][:n], nil
	}
	want := int(min(int64(max(n, window)), r.size-off))
	if cap(r.mem) < want {
		r.mem = make([]byte, want)
	}
	r.buf, r.off = r.mem[:want], off
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = nil
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read log segment %s: file shrank while being read", Name(r.id))
		}
		return nil, fmt.Errorf("read log segment %s: %w", Name(r.id), err)
	}
	return r.buf[:n], nil
}

// span returns exactly the n bytes at off, reading no more than that
// (next must not read into a hole). The slice is valid until the next
// call.
func (r *reader) span(off int64, n int) ([]byte, error) {
	if off >= r.off && off+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off:][:n], nil
	}
	if cap(r.mem) < n {
		r.mem = make([]byte, max(n, window))
	}
	r.buf, r.off = r.mem[:n], off
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = nil
		return nil, fmt.Errorf("read log segment %s: %w", Name(r.id), err)
	}
	return r.buf, nil
}

// what reading at an offset found.
type found int

const (
	foundRecord found = iota
	foundEOF          // the file ends exactly here
	foundZero         // a zeroed record header: the end of the written part, if nothing valid follows
	foundBad          // neither a record nor an end
)

// record reads the record at off. For foundRecord it returns the payload
// (valid until the next read) and the record's framed length; for
// foundBad, why.
func (r *reader) record(off int64) (payload []byte, n int64, what found, why string, err error) {
	left := r.size - off
	if left == 0 {
		return nil, 0, foundEOF, "", nil
	}
	h, err := r.bytes(off, int(min(left, RecordHeaderSize)))
	if err != nil {
		return nil, 0, foundBad, "", err
	}
	if isZero(h) {
		return nil, 0, foundZero, "", nil
	}
	if len(h) < RecordHeaderSize {
		return nil, 0, foundBad, "the file ends inside a record header", nil
	}
	plen := int64(binary.LittleEndian.Uint32(h[0:4]))
	sum := binary.LittleEndian.Uint32(h[4:8])
	if pos := int64(binary.LittleEndian.Uint64(h[8:16])); pos != off {
		return nil, 0, foundBad, "no record header", nil
	}
	if plen == 0 {
		return nil, 0, foundBad, "a record header with length 0", nil
	}
	if RecordHeaderSize+plen > left {
		return nil, 0, foundBad, fmt.Sprintf("a record of %d bytes runs past the end of the file", plen), nil
	}
	b, err := r.bytes(off, int(RecordHeaderSize+plen))
	if err != nil {
		return nil, 0, foundBad, "", err
	}
	if recordCRC(r.id, b[:RecordHeaderSize], b[RecordHeaderSize:]) != sum {
		return nil, 0, foundBad, "record checksum mismatch", nil
	}
	return b[RecordHeaderSize:], RecordHeaderSize + plen, foundRecord, "", nil
}

// legacyRecord reads a record of the format before segment headers.
func (r *reader) legacyRecord(off int64) (payload []byte, n int64, what found, why string, err error) {
	left := r.size - off
	if left == 0 {
		return nil, 0, foundEOF, "", nil
	}
	h, err := r.bytes(off, int(min(left, legacyHeader)))
	if err != nil {
		return nil, 0, foundBad, "", err
	}
	if isZero(h) {
		return nil, 0, foundZero, "", nil
	}
	if len(h) < legacyHeader {
		return nil, 0, foundBad, "the file ends inside a record header", nil
	}
	plen := int64(binary.LittleEndian.Uint32(h[0:4]))
	sum := binary.LittleEndian.Uint32(h[4:8])
	if plen == 0 {
		return nil, 0, foundBad, "a record header with length 0", nil
	}
	if legacyHeader+plen > left {
		return nil, 0, foundBad, fmt.Sprintf("a record of %d bytes runs past the end of the file", plen), nil
	}
	b, err := r.bytes(off, int(legacyHeader+plen))
	if err != nil {
		return nil, 0, foundBad, "", err
	}
	if crc32.Checksum(b[legacyHeader:], castagnoli) != sum {
		return nil, 0, foundBad, "record checksum mismatch", nil
	}
	return b[legacyHeader:], legacyHeader + plen, foundRecord, "", nil
}

// next finds the first valid record at or after from, or returns -1,
// and whether any byte from there to it (or to the end) is not zero.
// A valid record names its own offset and is checksummed with it and
// the segment number, so a match is a record written right there, not
// a payload that happens to look like one.
func (r *reader) next(from int64) (at int64, data bool, err error) {
	fd := int(r.f.Fd())
	for p := from; p+RecordHeaderSize <= r.size; {
		// Holes (and unwritten preallocated extents, until something
		// reads them) are zeros the kernel can skip without reading,
		// and no record starts in one: its bytes were written.
		end := r.size
		if d, err := unix.Seek(fd, p, unix.SEEK_DATA); errors.Is(err, unix.ENXIO) {
			return -1, data, nil
		} else if err == nil && d > p {
			p = d
			continue
		} else if h, err := unix.Seek(fd, p, unix.SEEK_HOLE); err == nil && h > p && h < end {
			end = h // read no further: reading a hole caches it as data
		}
		n := int(min(int64(window), end-p))
		if n < RecordHeaderSize {
			p += int64(n)
			continue
		}
		b, err := r.span(p, n)
		if err != nil {
			return -1, data, err
		}
		data = data || !isZero(b)
		for i := 0; i+RecordHeaderSize <= n; i++ {
			// Skip runs of zeros fast: the offset field of a record
			// past the header is never zero.
			if i&4095 == 0 && i+4096+RecordHeaderSize <= n && isZero(b[i:i+4096+RecordHeaderSize]) {
				i += 4095
				continue
			}
			if int64(binary.LittleEndian.Uint64(b[i+8:])) != p+int64(i) {
				continue
			}
			_, _, what, _, err := r.record(p + int64(i))
			if err != nil {
				return -1, data, err
			}
			if what == foundRecord {
				return p + int64(i), data, nil
			}
			if b, err = r.span(p, n); err != nil {
				return -1, data, err
			}
		}
		if p+int64(n) >= end {
			p = end
			continue
		}
		p += int64(n - RecordHeaderSize + 1)
	}
	return -1, data, nil
}

// zeroFrom reports whether every byte from off to the end of the file
// is zero.
func (r *reader) zeroFrom(off int64) (bool, error) {
	for off < r.size {
		n := int(min(int64(window), r.size-off))
		b, err := r.bytes(off, n)
		if err != nil {
			return false, err
		}
		if !isZero(b) {
			return false, nil
		}
		off += int64(n)
	}
	return true, nil
}

var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
