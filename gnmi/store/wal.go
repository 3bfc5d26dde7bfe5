package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// The write-ahead log (package internal/wal) makes a commit durable with
// one write and one fdatasync into a preallocated segment; bbolt needs two
// syncs per transaction (pages, then the meta page), which made the
// durable commit most of a gNMI Set's latency. bbolt keeps only snapshots
// and the metas as of each snapshot. This file is what the store puts in
// log records: a config commit's change set with an optional meta change
// stored in the same durable write, or a PutMeta.

// segmentSize is the preallocated size of a segment: a little more than
// the log a compaction waits for, within 1..64 MiB. A record that does not
// fit in what is left starts a new segment (as big as it needs).
func segmentSize(compactAt int64) int64 {
	return min(max(compactAt+compactAt/4, 1<<20), 64<<20)
}

const (
	walCommit byte = 1 // a config commit's log record, with an optional meta change
	walMeta   byte = 2 // a PutMeta
	// walCommitAnnotated is walCommit with the commit's annotation
	// (Options.Annotate) after the record.
	walCommitAnnotated byte = 3

	metaNone byte = 0
	metaPut  byte = 1
	metaDel  byte = 2
)

// commitHead is the frame before a commit's record: its kind, sequence
// number and the record's length.
const commitHead = 1 + 8 + 4

// encodeCommit encodes a commit's changes as its log record, framed with
// the commit's annotation and the meta change stored in the same durable
// write. The record is encoded in place after room left for the frame,
// so it is neither copied nor, at a bulk load's size, grown more than
// once: the frame is a kind byte (walCommit, or walCommitAnnotated when
// ann is not nil), the sequence number (8 bytes) and the record's length
// (4), the record, then with an annotation its length (4) and bytes, then
// the meta change (appendMeta).
func encodeCommit(seq uint64, ts int64, changes []tree.Change, metaKey string, meta, ann []byte) []byte {
	return finishCommit(encodeBody(changes, tailBytes(metaKey, meta, ann)), seq, ts, metaKey, meta, ann)
}

// bodyHead is the room encodeBody leaves before the changes: the frame
// and the record's head (its version, sequence number and time, varints)
// at their longest. A bulk commit's changes are encoded before its time
// is taken (commit), and finishCommit writes the heads just before them.
const bodyHead = commitHead + 1 + 2*binary.MaxVarintLen64

// annotationRoom is room for an annotation not yet made when a bulk
// commit's changes are encoded (a longer one grows the record once).
const annotationRoom = 1 << 10

// tailBytes is what finishCommit appends after the changes.
func tailBytes(metaKey string, meta, ann []byte) int {
	return 4 + len(ann) + 2 + len(metaKey) + 1 + 4 + len(meta)
}

// encodeBody encodes changes after bodyHead bytes, with room for tail
// more after them.
func encodeBody(changes []tree.Change, tail int) []byte {
	e := &encoder{buf: make([]byte, bodyHead, bodyHead+len(changes)*changeBytes+tail)}
	e.addAllSplit(changes, encodeParts(len(changes)))
	return e.bytes()
}

// finishCommit makes the log record of a commit from its changes as
// encodeBody encoded them: the frame and the record's head right before
// them, the annotation and the meta change after.
func finishCommit(body []byte, seq uint64, ts int64, metaKey string, meta, ann []byte) []byte {
	var h [bodyHead - commitHead]byte
	head := append(h[:0], recordVersion)
	head = binary.AppendUvarint(head, seq)
	head = binary.AppendVarint(head, ts)
	b := body[bodyHead-len(head)-commitHead:]
	copy(b[commitHead:], head)
	b[0] = walCommit
	if ann != nil {
		b[0] = walCommitAnnotated
	}
	binary.LittleEndian.PutUint64(b[1:], seq)
	binary.LittleEndian.PutUint32(b[9:], uint32(len(b)-commitHead))
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
