package segment

import (
	"encoding/binary"
	"fmt"
	"github.com/guildhouse-co/kedge/dataplane/shm"
)

// validate checks a mapped segment's header against layout version 1.
// fileSize is the size of the file, mem its mapping (at least HeaderSize).
func validate(path string, mem []byte, fileSize int64) error {
	if fileSize < int64(shm.HeaderSize) || len(mem) < int(shm.HeaderSize) {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("%d bytes, header needs %d", fileSize, shm.HeaderSize), Err: shm.ErrTruncated}
	}
	ne := binary.NativeEndian
	if m := ne.Uint32(mem[shm.OffMagic:]); m != shm.Magic {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("magic %#08x, want %#08x", m, shm.Magic), Err: shm.ErrBadMagic}
	}
	if v := ne.Uint32(mem[shm.OffLayoutVersion:]); v != shm.LayoutVersion {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("layout version %d, supported %d", v, shm.LayoutVersion), Err: shm.ErrLayoutVersion}
	}
	if h := ne.Uint32(mem[shm.OffHeaderSize:]); h != shm.HeaderSize {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("header size %d, want %d", h, shm.HeaderSize), Err: shm.ErrSegmentSize}
	}
	s := ne.Uint32(mem[shm.OffSegmentSize:])
	if s != shm.SegmentSize {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("header says segment size %d, want %d", s, shm.SegmentSize), Err: shm.ErrSegmentSize}
	}
	if fileSize < int64(s) {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("file has %d bytes, header says %d", fileSize, s), Err: shm.ErrTruncated}
	}
	if fileSize != int64(s) {
		return &shm.SegmentError{Path: path, Detail: fmt.Sprintf("file has %d bytes, header says %d", fileSize, s), Err: shm.ErrSegmentSize}
	}
	return nil
}

// initHeader writes a version 1 header into a fresh, zeroed segment.
func initHeader(mem []byte, pid int) {
	ne := binary.NativeEndian
	ne.PutUint32(mem[shm.OffLayoutVersion:], shm.LayoutVersion)
	ne.PutUint32(mem[shm.OffHeaderSize:], shm.HeaderSize)
	ne.PutUint32(mem[shm.OffSegmentSize:], shm.SegmentSize)
	ne.PutUint32(mem[shm.OffWriterPID:], uint32(pid))
	ne.PutUint32(mem[shm.OffMagic:], shm.Magic)
}
