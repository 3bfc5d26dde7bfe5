package tree

import (
	"strconv"
	"strings"
)

type vkind uint8

const (
	vNone vkind = iota
	vString
	vUint
	vInt
	vBool
	vList
)

// Value is one leaf or leaf-list value. It is small and comparable by
// Equal; the zero Value means "not set". Enumerations, prefixes and
// addresses are held as their canonical strings.
type Value struct {
	s string
	n uint64
	l *[]Value
	k vkind
}

// String constructs a string-kind value (strings, enums, unions of them).
func String(s string) Value { return Value{k: vString, s: s} }

// Uint constructs an unsigned integer value.
func Uint(n uint64) Value { return Value{k: vUint, n: n} }

// Int constructs a signed integer value.
func Int(n int64) Value { return Value{k: vInt, n: uint64(n)} }

// Bool constructs a boolean value.
func Bool(b bool) Value {
	if b {
		return Value{k: vBool, n: 1}
	}
	return Value{k: vBool}
}

// ListValue constructs a leaf-list value.
func ListValue(vs []Value) Value {
	c := append([]Value(nil), vs...)
	return Value{k: vList, l: &c}
}

// IsSet reports whether v holds a value.
func (v Value) IsSet() bool { return v.k != vNone }

// IsList reports whether v is a leaf-list value.
func (v Value) IsList() bool { return v.k == vList }

// Str returns the string form of a string-kind value.
func (v Value) Str() string { return v.s }

// UintVal returns an unsigned value.
func (v Value) UintVal() uint64 { return v.n }

// IntVal returns a signed value.
func (v Value) IntVal() int64 { return int64(v.n) }

// BoolVal returns a boolean value.
func (v Value) BoolVal() bool { return v.n != 0 }

// Elems returns the elements of a leaf-list value.
func (v Value) Elems() []Value {
	if v.l == nil {
		return nil
	}
	return *v.l
}

// IsString, IsUint, IsInt and IsBool report the value's kind.
func (v Value) IsString() bool { return v.k == vString }
func (v Value) IsUint() bool   { return v.k == vUint }
func (v Value) IsInt() bool    { return v.k == vInt }
func (v Value) IsBool() bool   { return v.k == vBool }

// Equal reports whether two values are the same.
func (v Value) Equal(o Value) bool {
	if v.k != o.k || v.s != o.s || v.n != o.n {
		return false
	}
	if v.k != vList {
		return true
	}
	a, b := v.Elems(), o.Elems()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// String returns the canonical text form used in path keys and logs.
func (v Value) String() string {
	switch v.k {
	case vString:
		return v.s
	case vUint:
		return strconv.FormatUint(v.n, 10)
	case vInt:
		return strconv.FormatInt(int64(v.n), 10)
	case vBool:
		if v.n != 0 {
			return "true"
		}
		return "false"
	case vList:
		parts := make([]string, 0, len(v.Elems()))
		for _, e := range v.Elems() {
			parts = append(parts, e.String())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}
