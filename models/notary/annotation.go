package notary

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Annotation is what the tree store keeps with each config commit for
// the notary, in the commit's own log record: who committed, at which
// posture level, and the value each changed config leaf had before (in
// the order of the commit's config changes). With it the notary builds a
// commit's NetworkMutationArtifact from the live change feed or, after a
// crash, from the store's log alone.
type Annotation struct {
	Writer Writer
	// Level is the effective posture level at commit; 0 when the commit
	// came before the posture engine first converged after a start.
	Level uint8
	Old   []tree.Value
}

const annotationVersion = 1

// AppendAnnotation encodes a: a version byte, the writer's identity, tier
// and method, the level, then each old value's canonical encoding
// (AppendValue), length-prefixed, empty for an absent leaf.
func AppendAnnotation(b []byte, a Annotation) []byte {
	b = append(b, annotationVersion)
	for _, s := range []string{a.Writer.Identity, a.Writer.Tier, a.Writer.Method} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, a.Level)
	b = binary.AppendUvarint(b, uint64(len(a.Old)))
	var v []byte
	for _, o := range a.Old {
		v = AppendValue(v[:0], o)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

var errAnnotation = errors.New("malformed commit annotation")

// DecodeAnnotation is the inverse of AppendAnnotation.
func DecodeAnnotation(b []byte) (Annotation, error) {
	w, level, olds, err := ReadAnnotation(b)
	a := Annotation{Writer: w, Level: level}
	if err != nil {
		return a, err
	}
	a.Old = make([]tree.Value, 0, olds.Len())
	for range olds.Len() {
		v, err := olds.value()
		if err != nil {
			return a, err
		}
		a.Old = append(a.Old, v)
	}
	return a, olds.End()
}

// ReadAnnotation decodes an annotation's writer and level and returns its
// old values unread, for a reader that needs each only once (the
// notary's recorder hashes a bulk commit's without keeping them).
func ReadAnnotation(b []byte) (Writer, uint8, OldValues, error) {
	if len(b) == 0 || b[0] != annotationVersion {
		return Writer{}, 0, OldValues{}, fmt.Errorf("%w: version", errAnnotation)
	}
	o := OldValues{b: b[1:]}
	var fields [3]string
	for i := range fields {
		s, ok := o.next()
		if !ok {
			return Writer{}, 0, OldValues{}, fmt.Errorf("%w: writer", errAnnotation)
		}
		fields[i] = string(s)
	}
	w := Writer{Identity: fields[0], Tier: fields[1], Method: fields[2]}
	if len(o.b) < 1 {
		return w, 0, OldValues{}, fmt.Errorf("%w: level", errAnnotation)
	}
	level := o.b[0]
	o.b = o.b[1:]
	n, k := binary.Uvarint(o.b)
	if k <= 0 || n > uint64(len(o.b)) {
		return w, level, OldValues{}, fmt.Errorf("%w: value count", errAnnotation)
	}
	o.b, o.n = o.b[k:], int(n)
	return w, level, o, nil
}

// OldValues are an annotation's old values, read in order.
type OldValues struct {
	b    []byte
	n, i int
	enc  []byte // a re-encoded value
}

// Len is how many old values the annotation holds.
func (o *OldValues) Len() int { return o.n }

func (o *OldValues) next() ([]byte, bool) {
	n, k := binary.Uvarint(o.b)
	if k <= 0 || n > uint64(len(o.b)-k) {
		return nil, false
	}
	out := o.b[k : k+int(n)]
	o.b = o.b[k+int(n):]
	return out, true
}

func (o *OldValues) value() (tree.Value, error) {
	enc, ok := o.next()
	if !ok {
		return tree.Value{}, fmt.Errorf("%w: value %d", errAnnotation, o.i)
	}
	v, err := ParseValue(enc)
	if err != nil {
		return tree.Value{}, fmt.Errorf("%w: value %d: %w", errAnnotation, o.i, err)
	}
	o.i++
	return v, nil
}

// Next returns the next old value as AppendValue encodes the value
// DecodeAnnotation decodes (empty for an absent leaf), valid until the
// next call. A string's encoding is its stored bytes, so it is returned
// without being decoded.
func (o *OldValues) Next() ([]byte, error) {
	if o.i >= o.n {
		return nil, fmt.Errorf("%w: value %d of %d", errAnnotation, o.i, o.n)
	}
	save := o.b
	enc, ok := o.next()
	if ok && (len(enc) == 0 || enc[0] == tagString) {
		o.i++
		return enc, nil
	}
	o.b = save
	v, err := o.value()
	if err != nil {
		return nil, err
	}
	o.enc = AppendValue(o.enc[:0], v)
	return o.enc, nil
}

// End reports an error when bytes follow the last old value.
func (o *OldValues) End() error {
	if len(o.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errAnnotation, len(o.b))
	}
	return nil
}

// ParseValue decodes a value's canonical encoding (AppendValue); empty
// input is the absent value.
func ParseValue(b []byte) (tree.Value, error) {
	if len(b) == 0 {
		return tree.Value{}, nil
	}
	v, rest, err := parseValue(b, 0)
	if err == nil && len(rest) != 0 {
		err = errors.New("trailing bytes")
	}
	return v, err
}

func parseValue(b []byte, depth int) (tree.Value, []byte, error) {
	if len(b) == 0 {
		return tree.Value{}, nil, errors.New("empty value")
	}
	tag, b := b[0], b[1:]
	switch tag {
	case tagString:
		return tree.String(string(b)), nil, nil
	case tagUint:
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return tree.Value{}, nil, errors.New("bad unsigned integer")
		}
		return tree.Uint(n), b[k:], nil
	case tagInt:
		n, k := binary.Varint(b)
		if k <= 0 {
			return tree.Value{}, nil, errors.New("bad integer")
		}
		return tree.Int(n), b[k:], nil
	case tagBool:
		if len(b) < 1 || b[0] > 1 {
			return tree.Value{}, nil, errors.New("bad boolean")
		}
		return tree.Bool(b[0] == 1), b[1:], nil
	case tagList:
		if depth > 0 {
			return tree.Value{}, nil, errors.New("nested list")
		}
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return tree.Value{}, nil, errors.New("bad list length")
		}
		b = b[k:]
		els := make([]tree.Value, 0, n)
		for i := uint64(0); i < n; i++ {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return tree.Value{}, nil, errors.New("bad list element")
			}
			e, rest, err := parseValue(b[k:k+int(l)], depth+1)
			if err != nil {
				return tree.Value{}, nil, err
			}
			if len(rest) != 0 {
				return tree.Value{}, nil, errors.New("list element with trailing bytes")
			}
			els = append(els, e)
			b = b[k+int(l):]
		}
		return tree.ListValue(els), b, nil
	}
	return tree.Value{}, nil, fmt.Errorf("unknown value tag %q", tag)
}
