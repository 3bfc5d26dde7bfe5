// Package shm is the VPP governance segment's contract: the posture level
// reaches the VPP governance plugin through a small shared-memory segment,
// a file (by default /dev/shm/kedge-governance) that Kedge maps MAP_SHARED
// and writes, and that the plugin maps read-only and polls. This package
// holds the plain Config, the layout, the State a reader sees, the errors
// and the Backend interface, and imports no mmap or syscall code: the
// implementation is package shm/segment, a recording fake shm/shmtest.
//
// The segment is a fixed 4 KiB page: a 64-byte header that identifies the
// layout, then the seqlock-protected governance_state. governance.h in this
// directory is the same layout for the C side; a test keeps the two equal.
//
// Seqlock protocol. The writer (exactly one, enforced with an exclusive
// flock on the file) bumps sequence to an odd value, stores the fields, then
// bumps sequence to the next even value. A reader loads sequence, retries
// while it is odd, loads the fields, then loads sequence again and retries if
// it changed. Every access to the state is an atomic load or store on an
// aligned word, so the protocol holds under the Go memory model and under the
// C11 model the plugin uses. The state also carries a check word computed
// from the other fields and the final sequence, so a reader can prove it did
// not see a torn state (the tests hammer exactly that).
package shm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Layout of version 1. Offsets are in bytes from the start of the segment;
// every multi-byte field is in host byte order (the plugin runs on the same
// machine).
const (
	Magic         uint32 = 0x4B474F56 // "KGOV"
	LayoutVersion uint32 = 1
	HeaderSize    uint32 = 64
	SegmentSize   uint32 = 4096

	OffMagic         = 0  // u32
	OffLayoutVersion = 4  // u32
	OffHeaderSize    = 8  // u32
	OffSegmentSize   = 12 // u32
	OffWriterPID     = 16 // u32, informational: pid of the last writer that opened the segment

	OffSequence    = 64 // u64, seqlock counter: odd while a write is in progress
	OffLevel       = 72 // u32, posture level 1..5; 0 means no level published yet
	OffFlags       = 76 // u32, opaque to this package, passed to the plugin
	OffTimestampNs = 80 // u64, CLOCK_REALTIME ns of the last write
	OffCheck       = 88 // u64, Check(sequence, level, flags, timestamp)
	StateSize      = 32
)

// LevelUnset is the level of a freshly created segment: nothing published
// yet, so the plugin keeps its own configured default.
const LevelUnset uint8 = 0

// CheckMul is an odd 64-bit constant (from the golden ratio) that spreads
// every input bit over the check word.
const CheckMul uint64 = 0x9E3779B97F4A7C15

// Check is the consistency word stored with each state. seq is the even
// sequence that completes the write. governance.h has the same function.
func Check(seq uint64, level, flags uint32, timestampNs uint64) uint64 {
	x := (seq ^ timestampNs) * CheckMul
	return x ^ (uint64(level)<<32 | uint64(flags))
}

// Sentinel errors. Open and OpenReader wrap them in a *SegmentError that
// names the path and what was found; match with errors.Is.
var (
	ErrBadMagic      = errors.New("not a kedge governance segment")
	ErrLayoutVersion = errors.New("unsupported layout version")
	ErrSegmentSize   = errors.New("segment size mismatch")
	ErrTruncated     = errors.New("segment truncated")
	ErrWriterBusy    = errors.New("segment has another writer")
	ErrInvalidLevel  = errors.New("posture level out of range 1..5")
	ErrTornState     = errors.New("state check word mismatch")
	ErrWriteStuck    = errors.New("write in progress for too long")
	ErrClosed        = errors.New("segment closed")
)

// SegmentError says which segment was refused and why.
type SegmentError struct {
	Path   string
	Detail string // what was found, e.g. "layout version 7, newest supported 1"
	Err    error  // one of the sentinels above
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("segment %s: %s: %v", e.Path, e.Detail, e.Err)
}

func (e *SegmentError) Unwrap() error { return e.Err }

// DefaultPath is where the VPP governance plugin expects the segment.
const DefaultPath = "/dev/shm/kedge-governance"

// Config is the desired governance state.
type Config struct {
	Level uint8  // posture level, 1 (lockdown) .. 5 (normal)
	Flags uint32 // passed through to the plugin unchanged
}

// Backend publishes a Config to the governance segment.
type Backend interface {
	// Set publishes cfg (a no-op when the segment already holds it).
	Set(ctx context.Context, cfg Config) error
	// Close releases the segment; the plugin keeps the last state.
	Close() error
}

// State is one consistent snapshot of governance_state.
type State struct {
	Level     uint8
	Flags     uint32
	Sequence  uint64    // even; Sequence/2 is the number of writes since creation
	Timestamp time.Time // wall clock time of the last write; zero if never written
}
