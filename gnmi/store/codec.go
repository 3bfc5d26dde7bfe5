package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// recordVersion is the first byte of every log record and snapshot;
// a newer version is refused on open rather than misread.
const recordVersion = 1

const (
	leafSet = 1
	leafDel = 2
)

const (
	kindString = 1
	kindUint   = 2
	kindInt    = 3
	kindBool   = 4
	kindList   = 5
)

// encoder serialises change sets: the instance path of each group of
// consecutive changes, front-coded against the previous path (routes
// differ only near the end of their paths), then each leaf's name,
// operation and value. Names rather than schema positions are stored so
// that a schema that gains leaves can still read old records. Only config
// leaves are written; state is rebuilt by the reconcilers after restart.
type encoder struct {
	buf []byte
	// prev is the path written last; path, the one being written (their
	// arrays swap group after group).
	prev, path []byte
	cur        tree.Ident
	leaves     []byte
	n          int
	// paths renders each changed instance's path from its parent's.
	paths tree.PathMemo
}

// newEncoder starts a record after reserve bytes left for a frame around
// it (see encodeCommit), with room for about sizeHint bytes of changes.
func newEncoder(reserve int, seq uint64, ts int64, sizeHint int) *encoder {
	e := &encoder{buf: make([]byte, reserve, reserve+64+sizeHint)}
	e.buf = append(e.buf, recordVersion)
	e.buf = binary.AppendUvarint(e.buf, seq)
	e.buf = binary.AppendVarint(e.buf, ts)
	return e
}

// add encodes one change, buffering the leaves of the instance it is at
// until a change to another instance comes (the count goes first).
func (e *encoder) add(c tree.Change) {
	if !c.Node.Config {
		return
	}
	if c.In != e.cur {
		e.flush()
		e.cur = c.In
	}
	e.leaves = appendLeaf(e.leaves, c)
	e.n++
}

// addAll encodes changes as add does one by one, but counts each group
// (a run of config changes to one instance, state changes among them
// skipped) before writing it, so that its leaves go straight into the
// record instead of through a buffer of their own; the bytes are the
// same.
func (e *encoder) addAll(changes []tree.Change) {
	e.flush()
	for i := 0; i < len(changes); {
		c := changes[i]
		if !c.Node.Config {
			i++
			continue
		}
		n, j := 0, i
		for ; j < len(changes); j++ {
			if d := changes[j]; d.Node.Config {
				if d.In != c.In {
					break
				}
				n++
			}
		}
		e.head(c.In, n)
		for _, d := range changes[i:j] {
			if d.Node.Config {
				e.buf = appendLeaf(e.buf, d)
			}
		}
		i = j
	}
}

// appendLeaf appends a change's leaf name, operation and value.
func appendLeaf(b []byte, c tree.Change) []byte {
	b = appendString(b, c.Node.Name)
	if c.Op == tree.OpDelete {
		return append(b, leafDel)
	}
	b = append(b, leafSet)
	return appendValue(b, c.Val)
}

func (e *encoder) flush() {
	if e.n == 0 {
		return
	}
	e.head(e.cur, e.n)
	e.buf = append(e.buf, e.leaves...)
	e.leaves, e.n = e.leaves[:0], 0
}

// head writes a group's instance path, front-coded against the last
// group's, and its number of leaves.
func (e *encoder) head(in tree.Ident, n int) {
	path := e.paths.AppendInst(e.path[:0], in)
	common := commonPrefix(e.prev, path)
	e.buf = binary.AppendUvarint(e.buf, uint64(common))
	e.buf = binary.AppendUvarint(e.buf, uint64(len(path)-common))
	e.buf = append(e.buf, path[common:]...)
	e.buf = binary.AppendUvarint(e.buf, uint64(n))
	e.prev, e.path = path, e.prev
}

func (e *encoder) bytes() []byte {
	e.flush()
	return e.buf
}

// changeBytes is about what a change takes in a record: 24.6 bytes for a
// gRIBI bulk load's (four leaves of an entry in two instances), so room
// for 32 a change is made once rather than grown a quarter at a time.
const changeBytes = 32

// encodeRecord serialises one commit's changes.
func encodeRecord(seq uint64, ts int64, changes []tree.Change) []byte {
	e := newEncoder(0, seq, ts, len(changes)*changeBytes)
	e.addAllSplit(changes, encodeParts(len(changes)))
	return e.bytes()
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendValue(buf []byte, v tree.Value) []byte {
	switch {
	case v.IsList():
		buf = append(buf, kindList)
		buf = binary.AppendUvarint(buf, uint64(len(v.Elems())))
		for _, e := range v.Elems() {
			buf = appendValue(buf, e)
		}
	case v.IsUint():
		buf = append(buf, kindUint)
		buf = binary.AppendUvarint(buf, v.UintVal())
	case v.IsInt():
		buf = append(buf, kindInt)
		buf = binary.AppendVarint(buf, v.IntVal())
	case v.IsBool():
		b := byte(0)
		if v.BoolVal() {
			b = 1
		}
		buf = append(buf, kindBool, b)
	default:
		buf = append(buf, kindString)
		buf = appendString(buf, v.Str())
	}
	return buf
}

var errCorrupt = errors.New("corrupt record")

// reader decodes records; its methods record the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or bad %s", errCorrupt, what)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) str(what string) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if uint64(len(r.b)) < n {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) value(depth int) tree.Value {
	switch r.byte1("value kind") {
	case kindString:
		return tree.String(r.str("string"))
	case kindUint:
		return tree.Uint(r.uvarint("uint"))
	case kindInt:
		return tree.Int(r.varint("int"))
	case kindBool:
		return tree.Bool(r.byte1("bool") != 0)
	case kindList:
		if depth > 0 {
			r.fail("nested list")
			return tree.Value{}
		}
		n := r.uvarint("list length")
		if n > uint64(len(r.b)) {
			r.fail("list length")
			return tree.Value{}
		}
		vs := make([]tree.Value, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			vs = append(vs, r.value(depth+1))
		}
		return tree.ListValue(vs)
	}
	r.fail("value kind")
	return tree.Value{}
}

// decodeRecord replays a record into an open transaction.
func decodeRecord(b []byte, tx *tree.Txn) (seq uint64, ts int64, err error) {
	r := &reader{b: b}
	if v := r.byte1("version"); r.err == nil && v != recordVersion {
		return 0, 0, fmt.Errorf("decode record: layout version %d, this build reads %d", v, recordVersion)
	}
	seq = r.uvarint("seq")
	ts = r.varint("timestamp")
	prev := ""
	for r.err == nil && len(r.b) > 0 {
		common := r.uvarint("prefix length")
		suffix := r.str("path")
		if r.err != nil {
			break
		}
		if common > uint64(len(prev)) {
			r.fail("prefix length")
			break
		}
		path := prev[:common] + suffix
		prev = path
		n := r.uvarint("leaf count")
		for i := uint64(0); i < n && r.err == nil; i++ {
			name := r.str("leaf name")
			op := r.byte1("leaf op")
			var v tree.Value
			if op == leafSet {
				v = r.value(0)
			} else if op != leafDel {
				r.fail("leaf op")
			}
			if r.err != nil {
				break
			}
			if err := tx.ApplyRaw(path, name, v); err != nil {
				return 0, 0, fmt.Errorf("replay record %d: %w", seq, err)
			}
		}
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("decode record: %w", r.err)
	}
	return seq, ts, nil
}
