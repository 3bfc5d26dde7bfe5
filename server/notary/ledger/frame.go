package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Frame types.
const (
	frameHeader     byte = 1
	frameGroup      byte = 2
	frameEntry      byte = 3
	frameCheckpoint byte = 4
)

const (
	frameOverhead = 9 // length, CRC, type
	// MaxEntry is the largest entry Append accepts.
	MaxEntry = 32 << 20
	// maxGroup bounds a group's bytes: a group ends before it would pass
	// this size unless a single entry needs more (then it holds that entry
	// only). Recovery uses it as the torn-write bound when a group frame
	// itself is unreadable.
	maxGroup = MaxEntry + 64<<10
	// groupTarget is when Flush starts a new group.
	groupTarget = 4 << 20
	// maxFrame bounds any frame's payload when reading.
	maxFrame = MaxEntry + 1024
	// headerMagic starts the header frame's payload.
	headerMagic = "kedge-notary-ledger v1\n"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frameCRC(typ byte, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte{typ})
	return crc32.Update(c, castagnoli, payload)
}

// appendFrame appends one framed payload to b.
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, frameCRC(typ, payload))
	b = append(b, typ)
	return append(b, payload...)
}

// frameAt decodes the frame that starts at buf[0]; buf holds at least
// what the file has from there. ok is false for a damaged or partial
// frame; end is true for the zeros after the written part.
func frameAt(buf []byte) (typ byte, payload []byte, n int, end, ok bool) {
	if len(buf) < frameOverhead {
		return 0, nil, 0, allZero(buf), false
	}
	l := binary.LittleEndian.Uint32(buf)
	crc := binary.LittleEndian.Uint32(buf[4:])
	typ = buf[8]
	if l == 0 && crc == 0 && typ == 0 {
		return 0, nil, 0, true, false
	}
	if l > maxFrame || int(l) > len(buf)-frameOverhead || typ < frameHeader || typ > frameCheckpoint {
		return 0, nil, 0, false, false
	}
	payload = buf[frameOverhead : frameOverhead+int(l)]
	if frameCRC(typ, payload) != crc {
		return 0, nil, 0, false, false
	}
	return typ, payload, frameOverhead + int(l), false, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Errors callers match with errors.Is.
var (
	// ErrCorrupt: the log is damaged somewhere a crash cannot have torn it.
	ErrCorrupt = errors.New("notary log corrupt")
	// ErrTampered: the entries do not hash to the signed checkpoint, or a
	// checkpoint's signature does not verify.
	ErrTampered = errors.New("notary log does not match its signed checkpoint")
	// ErrRolledBack: the log is shorter than a size it is known to have
	// reached durably (an older copy restored, or a durable tail lost).
	ErrRolledBack = errors.New("notary log rolled back")
	// ErrFork: the log is not an extension of a checkpoint it should
	// extend (a different history under the same key).
	ErrFork = errors.New("notary log forked")
	// ErrFailed: a write or sync failed; the ledger refuses writes until
	// it is reopened, since what reached the disk is unknown.
	ErrFailed = errors.New("notary log stopped after a failed write")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("notary log closed")
)

// CorruptError says where a log is damaged. It matches ErrCorrupt.
type CorruptError struct {
	File   string
	Offset int64
	// Entries is how many intact entries precede the damage.
	Entries int64
	Reason  string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("notary log %s damaged at offset %d after %d intact entries: %s (not a torn tail; nothing was changed)",
		e.File, e.Offset, e.Entries, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func encodeGroup(length int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(length)) }

func decodeGroup(p []byte) (int64, bool) {
	if len(p) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(p)), true
}
