// Package wal is the tree store's write-ahead log: opaque records
// appended durably (one write and one fdatasync each) to preallocated
// segment files, and the reader that replays them and tells a record
// torn by a crash, which was never acknowledged and may be dropped, from
// damage to acknowledged records, which it refuses with what recovery
// would drop.
//
// # Format
//
// A segment starts with a 64-byte header:
//
//	[0:8]   magic "kedgewal"
//	[8:12]  u32 format version (2)
//	[16:24] u64 segment number (also in the file name)
//	[24:32] u64 size the file was created with (preallocated, or sparse)
//	[32:40] u64 previous segment holding records when this one was made
//	[40:48] u64 where that segment's records end (0: no such segment)
//	[48:56] u64 base: the first segment the store's snapshot did not cover
//	[60:64] u32 CRC-32C of [0:60)
//
// then records, each
//
//	[0:4]   u32 payload length (at least 1)
//	[4:8]   u32 CRC-32C of the segment number (u64), [0:4], [8:16] and the payload
//	[8:16]  u64 the record's own offset in the segment
//	[16:]   payload
//
// all little-endian. Zeros after the last record are the unwritten,
// preallocated rest of the file.
//
// # Torn tails and damage
//
// A crash can tear only the record being written, the last one of the
// newest segment. Two things tell it from damage to records that were
// acknowledged:
//
//   - Each record names its own offset and is checksummed with it, so a
//     valid record can be found anywhere after a bad spot by scanning for
//     an offset field that equals its position. Records are written and
//     synced one after the other, so a valid record after a bad spot
//     proves the bad spot was synced before: damage, not a torn write.
//     With no valid record after it, a bad spot at the end of the newest
//     segment is a torn write and is dropped.
//   - Each header chains to the previous segment that holds records and
//     says where its records end, and records the size the file was made
//     with. An older segment whose records stop short of what its
//     successor recorded (truncated, zeroed or damaged), a missing
//     segment, or a newest segment whose size changed is damage, never a
//     torn tail. Every segment but the newest is cut back to its
//     records once the next exists, so a deleted newest segment shows
//     too. A segment whose base is above the snapshot's first segment
//     was made after a snapshot that is no longer there.
//
// Segments written before this format (no header, records framed as
// u32 length, u32 CRC-32C of the payload, payload) are still read; they
// are older than every segment in this format, so they are checked as
// finished segments: records, then nothing but zeros or the end of the
// file, or records up to where their successor's header says they end.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"strconv"
	"strings"
)

const (
	// HeaderSize is the size of a segment header; the first record
	// starts right after it.
	HeaderSize = 64
	// RecordHeaderSize is the framing each record adds to its payload.
	RecordHeaderSize = 16

	magic   = "kedgewal"
	version = 2

	legacyHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Name is the file name of segment id.
func Name(id uint64) string { return fmt.Sprintf("wal-%016x.log", id) }

// List returns the segment numbers in dir, in order.
func List(dir string) ([]uint64, error) {
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
		if err != nil || Name(id) != name {
			continue // not ours
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Link names the segment that held the log's last records when a segment
// was created, and where those records end. End 0 means no segment.
type Link struct {
	ID  uint64
	End int64
}

// header is a decoded segment header.
type header struct {
	id   uint64
	size int64
	prev Link
	base uint64
}

func (h header) encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], version)
	binary.LittleEndian.PutUint64(b[16:], h.id)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.size))
	binary.LittleEndian.PutUint64(b[32:], h.prev.ID)
	binary.LittleEndian.PutUint64(b[40:], uint64(h.prev.End))
	binary.LittleEndian.PutUint64(b[48:], h.base)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

var errBadHeader = errors.New("bad segment header")

func decodeHeader(b []byte) (header, error) {
	if len(b) < HeaderSize || string(b[:8]) != magic {
		return header{}, fmt.Errorf("%w: no magic", errBadHeader)
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return header{}, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != version {
		return header{}, fmt.Errorf("%w: format version %d, this build reads %d", errBadHeader, v, version)
	}
	h := header{
		id:   binary.LittleEndian.Uint64(b[16:]),
		size: int64(binary.LittleEndian.Uint64(b[24:])),
		prev: Link{ID: binary.LittleEndian.Uint64(b[32:]), End: int64(binary.LittleEndian.Uint64(b[40:]))},
		base: binary.LittleEndian.Uint64(b[48:]),
	}
	if h.size < HeaderSize || h.prev.End < 0 {
		return header{}, fmt.Errorf("%w: size %d, previous end %d", errBadHeader, h.size, h.prev.End)
	}
	return h, nil
}

// frameRecord fills hdr (RecordHeaderSize bytes) for payload as the
// record at off of segment id.
func frameRecord(hdr []byte, id uint64, off int64, payload []byte) {
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(off))
	binary.LittleEndian.PutUint32(hdr[4:], recordCRC(id, hdr, payload))
}

// appendRecord appends payload framed as the record at off of segment id.
func appendRecord(b []byte, id uint64, off int64, payload []byte) []byte {
	var hdr [RecordHeaderSize]byte
	frameRecord(hdr[:], id, off, payload)
	return append(append(b, hdr[:]...), payload...)
}

// recordCRC checksums a record with the segment it belongs to and the
// offset it claims, so that a record is valid only where it was written.
func recordCRC(id uint64, hdr, payload []byte) uint32 {
	var pre [20]byte
	binary.LittleEndian.PutUint64(pre[0:], id)
	copy(pre[8:12], hdr[0:4])
	copy(pre[12:20], hdr[8:16])
	return crc32.Update(crc32.Checksum(pre[:], castagnoli), castagnoli, payload)
}
