package ledger

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// cpRef is where a checkpoint frame sits and the size it covers.
type cpRef struct {
	size int64
	off  int64 // frame start
	n    int64 // frame length
}

// errTruncated: the file ends where a crash cannot have ended it.
var errTruncated = errors.New("truncated")

// scanResult is what a scan of a log file found.
type scanResult struct {
	origin string
	// Intact entries under a checkpoint, with their payload offsets and
	// lengths; entries of a torn group are not included.
	offsets []int64
	lens    []uint32
	cps     []cpRef
	// end is where the next group goes (after the last checkpoint).
	end int64
	// torn is set when a torn final group was found: [end, tornTo) must be
	// zeroed before writing.
	torn    bool
	tornTo  int64
	tornWhy string
	// empty: the file holds nothing but zeros (a crash while creating
	// it), so the header must be written.
	empty bool
}

// visitor sees every intact entry and checkpoint of the log in order
// (entries of a torn group are visited too, before the scan knows the
// group is torn: callers must use the result's counts).
type visitor struct {
	entry      func(i int64, payload []byte) error
	checkpoint func(size int64, note []byte) error
}

// scanLog reads a log file from start to end and tells a torn tail from
// corruption. It changes nothing.
func scanLog(path string, f *os.File, v visitor) (*scanResult, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat notary log: %w", err)
	}
	size := st.Size()
	r := &scanResult{}
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	var off int64
	var hdr [frameOverhead]byte
	var payload []byte
	corrupt := func(at int64, why string) error {
		return &CorruptError{File: path, Offset: at, Entries: int64(len(r.offsets)), Reason: why}
	}
	// read returns the next frame; ok false with end for the zeros after
	// the written part, ok false without end for a damaged frame.
	read := func() (typ byte, p []byte, end, ok bool, err error) {
		if size-off < frameOverhead {
			// The writer always leaves an end marker (a zero frame header)
			// before the end of the file, and a crash never shrinks it.
			return 0, nil, false, false, errTruncated
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return 0, nil, false, false, fmt.Errorf("read notary log: %w", err)
		}
		l := binary.LittleEndian.Uint32(hdr[:])
		crc := binary.LittleEndian.Uint32(hdr[4:])
		typ = hdr[8]
		if l == 0 && crc == 0 && typ == 0 {
			return 0, nil, true, false, nil
		}
		if int64(l) > size-off-frameOverhead && l <= maxFrame && typ >= frameHeader && typ <= frameCheckpoint {
			return 0, nil, false, false, errTruncated
		}
		if l > maxFrame || typ < frameHeader || typ > frameCheckpoint {
			return 0, nil, false, false, nil
		}
		if cap(payload) < int(l) {
			payload = make([]byte, l)
		}
		p = payload[:l]
		if _, err := io.ReadFull(br, p); err != nil {
			return 0, nil, false, false, fmt.Errorf("read notary log: %w", err)
		}
		if frameCRC(typ, p) != crc {
			return 0, nil, false, false, nil
		}
		return typ, p, false, true, nil
	}

	typ, p, _, ok, err := read()
	if errors.Is(err, errTruncated) {
		z, zerr := zeroFrom(f, 0, size)
		if zerr == nil && z == 0 {
			r.empty = true
			return r, nil
		}
		return nil, corrupt(0, "no valid header frame")
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		z, err := zeroFrom(f, 0, size)
		if err != nil {
			return nil, err
		}
		if z == 0 {
			r.empty = true
			return r, nil
		}
		return nil, corrupt(0, "no valid header frame")
	}
	if typ != frameHeader || !strings.HasPrefix(string(p), headerMagic) {
		return nil, corrupt(0, "not a Kedge notary log (bad header)")
	}
	r.origin = strings.TrimPrefix(string(p), headerMagic)
	off += int64(frameOverhead + len(p))
	r.end = off

	var (
		inGroup  bool
		groupAt  int64
		groupLen int64
		pendOff  []int64
		pendLen  []uint32
	)
	for {
		at := off
		typ, p, end, ok, err := read()
		if errors.Is(err, errTruncated) {
			return nil, corrupt(at, fmt.Sprintf("the file ends at %d, inside a frame or without the end marker: truncated", size))
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			if end && !inGroup {
				// The normal end: nothing but zeros may follow.
				z, err := zeroFrom(f, at, size)
				if err != nil {
					return nil, err
				}
				if z != at {
					return nil, corrupt(at, fmt.Sprintf("data after the end of the log (non-zero bytes up to offset %d)", z))
				}
				return r, nil
			}
			// A damaged frame, or the end inside a group: torn or corrupt.
			bound := groupAt + groupLen
			if !inGroup {
				groupAt, bound = at, at+maxGroup
			} else if bound+frameOverhead > size {
				return nil, corrupt(at, fmt.Sprintf("the group at offset %d declares %d bytes, past the end of the file at %d: truncated", groupAt, groupLen, size))
			}
			return r, r.torn2(path, f, size, at, groupAt, bound, end)
		}
		off += int64(frameOverhead + len(p))
		switch typ {
		case frameGroup:
			if inGroup {
				return nil, corrupt(at, fmt.Sprintf("group starts inside the group at offset %d, which has no checkpoint", groupAt))
			}
			l, good := decodeGroup(p)
			if !good || l < frameOverhead+8 || l > maxGroup+1<<20 {
				return nil, corrupt(at, "malformed group frame")
			}
			inGroup, groupAt, groupLen = true, at, l
			pendOff, pendLen = pendOff[:0], pendLen[:0]
		case frameEntry:
			if !inGroup {
				return nil, corrupt(at, "entry outside a group")
			}
			i := int64(len(r.offsets) + len(pendOff))
			if v.entry != nil {
				if err := v.entry(i, p); err != nil {
					return nil, err
				}
			}
			pendOff = append(pendOff, at+frameOverhead)
			pendLen = append(pendLen, uint32(len(p)))
		case frameCheckpoint:
			if !inGroup {
				return nil, corrupt(at, "checkpoint outside a group")
			}
			if off != groupAt+groupLen {
				return nil, corrupt(at, fmt.Sprintf("group at offset %d declares %d bytes but its checkpoint ends at %d", groupAt, groupLen, off-groupAt))
			}
			c, err := ParseUnverified(p)
			if err != nil {
				return nil, corrupt(at, err.Error())
			}
			n := int64(len(r.offsets) + len(pendOff))
			if c.Size != n {
				return nil, corrupt(at, fmt.Sprintf("checkpoint claims %d entries, the log holds %d", c.Size, n))
			}
			if v.checkpoint != nil {
				if err := v.checkpoint(n, p); err != nil {
					return nil, err
				}
			}
			r.offsets = append(r.offsets, pendOff...)
			r.lens = append(r.lens, pendLen...)
			r.cps = append(r.cps, cpRef{size: n, off: at, n: off - at})
			r.end = off
			inGroup = false
		default:
			return nil, corrupt(at, "second header frame")
		}
	}
}

// torn2 decides whether the damage at `at` is the torn tail of the group
// that starts at groupAt and may extend to bound: the bytes after bound
// must all be zero, and no intact checkpoint may follow the damage.
func (r *scanResult) torn2(path string, f *os.File, size, at, groupAt, bound int64, endMarker bool) error {
	corrupt := func(why string) error {
		return &CorruptError{File: path, Offset: at, Entries: int64(len(r.offsets)), Reason: why}
	}
	z, err := zeroFrom(f, at, size)
	if err != nil {
		return err
	}
	if z > bound {
		return corrupt(fmt.Sprintf("damaged frame followed by data up to offset %d, beyond the %d bytes the last write could have covered", z, bound-groupAt))
	}
	if off, found, err := findCheckpoint(f, at+1, z); err != nil {
		return err
	} else if found {
		return corrupt(fmt.Sprintf("damaged frame followed by an intact checkpoint at offset %d", off))
	}
	r.tornWhy = fmt.Sprintf("damaged frame at offset %d", at)
	if endMarker {
		r.tornWhy = fmt.Sprintf("group at offset %d ends at %d before its checkpoint", groupAt, at)
	}
	r.torn, r.tornTo = true, max(z, at)
	r.end = groupAt
	return nil
}

var zeros = make([]byte, 1<<20)

// zeroFrom returns the offset just after the last non-zero byte in
// [from, size), or from when all of it is zero.
func zeroFrom(f *os.File, from, size int64) (int64, error) {
	chunk := int64(len(zeros))
	buf := make([]byte, chunk)
	last := from
	for off := from; off < size; off += chunk {
		n := min(chunk, size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return 0, fmt.Errorf("read notary log: %w", err)
		}
		if bytes.Equal(buf[:n], zeros[:n]) {
			continue
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				last = off + i + 1
				break
			}
		}
	}
	return last, nil
}

// findCheckpoint looks for an intact checkpoint frame starting anywhere in
// [from, to).
func findCheckpoint(f *os.File, from, to int64) (int64, bool, error) {
	if to <= from {
		return 0, false, nil
	}
	buf := make([]byte, to-from)
	if _, err := f.ReadAt(buf, from); err != nil && err != io.EOF {
		return 0, false, fmt.Errorf("read notary log: %w", err)
	}
	for i := 0; i+frameOverhead <= len(buf); i++ {
		if buf[i+8] != frameCheckpoint {
			continue
		}
		if typ, _, _, _, ok := frameAt(buf[i:]); ok && typ == frameCheckpoint {
			return from + int64(i), true, nil
		}
	}
	return 0, false, nil
}

// memHashes is an in-memory stored-hash table, for rebuilding and for the
// offline verifier.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("read stored hash %d of %d", x, len(*m))
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func (m *memHashes) add(n int64, data []byte) error {
	hs, err := tlog.StoredHashes(n, data, m)
	if err != nil {
		return err
	}
	*m = append(*m, hs...)
	return nil
}
