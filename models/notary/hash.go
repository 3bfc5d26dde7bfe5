package notary

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Value tags of the canonical encoding.
const (
	tagString = 's'
	tagUint   = 'u'
	tagInt    = 'i'
	tagBool   = 'b'
	tagList   = 'l'
)

// AppendValue appends the canonical encoding of a tree value: a type tag,
// then the string's bytes, the integer as a varint, the boolean as one
// byte, or a leaf-list's element count and each element's length-prefixed
// encoding. Equal values encode equally; values of different types never
// do (the string "1" and the number 1 differ).
func AppendValue(b []byte, v tree.Value) []byte {
	switch {
	case v.IsString():
		return append(append(b, tagString), v.Str()...)
	case v.IsUint():
		return binary.AppendUvarint(append(b, tagUint), v.UintVal())
	case v.IsInt():
		return binary.AppendVarint(append(b, tagInt), v.IntVal())
	case v.IsBool():
		x := byte(0)
		if v.BoolVal() {
			x = 1
		}
		return append(b, tagBool, x)
	case v.IsList():
		els := v.Elems()
		b = binary.AppendUvarint(append(b, tagList), uint64(len(els)))
		var e []byte
		for _, x := range els {
			e = AppendValue(e[:0], x)
			b = binary.AppendUvarint(b, uint64(len(e)))
			b = append(b, e...)
		}
		return b
	}
	return b
}

// ValueHash is SHA-256 of a value's canonical encoding, nil for an unset
// value (an absent leaf has no hash, so "absent" and "empty string"
// differ).
func ValueHash(v tree.Value) []byte {
	if !v.IsSet() {
		return nil
	}
	var buf [64]byte
	h := sha256.Sum256(AppendValue(buf[:0], v))
	return h[:]
}

// changesDigest accumulates the digest over a commit's changes: for each,
// the path, the operation and both value hashes, each length-prefixed.
// Changes are encoded into buf and hashed a few kilobytes at a time: a
// bulk commit's 600,000 changes would otherwise be as many small writes.
type changesDigest struct {
	h   hash.Hash
	buf []byte
}

// digestChunk is how much encoded change the digest gathers before
// hashing it.
const digestChunk = 8 << 10

func newChangesDigest() *changesDigest { return &changesDigest{h: sha256.New()} }

func (d *changesDigest) add(path string, del bool, before, after []byte) {
	d.buf = appendChange(d.buf, path, del, before, after)
	d.spill()
}

// addBytes is add with the path in a byte slice.
func (d *changesDigest) addBytes(path []byte, del bool, before, after []byte) {
	d.buf = appendChange(d.buf, path, del, before, after)
	d.spill()
}

func appendChange[P string | []byte](b []byte, path P, del bool, before, after []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	op := byte(1)
	if del {
		op = 2
	}
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(before)))
	b = append(b, before...)
	b = binary.AppendUvarint(b, uint64(len(after)))
	return append(b, after...)
}

// spill hashes the gathered encoding once it is a chunk.
func (d *changesDigest) spill() {
	if len(d.buf) >= digestChunk {
		d.h.Write(d.buf)
		d.buf = d.buf[:0]
	}
}

func (d *changesDigest) sum() []byte {
	d.h.Write(d.buf)
	d.buf = d.buf[:0]
	return d.h.Sum(nil)
}
