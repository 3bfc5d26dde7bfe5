package tree

import (
	"strconv"
	"strings"
)

// Value is one leaf or leaf-list value; the zero Value means "not set".
// Enumerations, prefixes and addresses are held as their canonical
// strings. A Value is one interface word pair (16 bytes): a route holds
// a dozen leaf slots, most of them empty, and at 100,000 routes the slot
// size decides whether the tree fits in 1 KiB a route. Small integers
// and booleans box without allocating.
type Value struct {
	x any // nil, string, uint64, int64, bool or []Value
}

// String constructs a string-kind value (strings, enums, unions of them).
func String(s string) Value { return Value{x: s} }

// Uint constructs an unsigned integer value.
func Uint(n uint64) Value { return Value{x: n} }

// Int constructs a signed integer value.
func Int(n int64) Value { return Value{x: n} }

// Bool constructs a boolean value.
func Bool(b bool) Value { return Value{x: b} }

// ListValue constructs a leaf-list value.
func ListValue(vs []Value) Value { return Value{x: append([]Value(nil), vs...)} }

// IsSet reports whether v holds a value.
func (v Value) IsSet() bool { return v.x != nil }

// IsList reports whether v is a leaf-list value.
func (v Value) IsList() bool { _, ok := v.x.([]Value); return ok }

// Str returns the string form of a string-kind value.
func (v Value) Str() string { s, _ := v.x.(string); return s }

// UintVal returns an unsigned value.
func (v Value) UintVal() uint64 { n, _ := v.x.(uint64); return n }

// IntVal returns a signed value.
func (v Value) IntVal() int64 { n, _ := v.x.(int64); return n }

// BoolVal returns a boolean value.
func (v Value) BoolVal() bool { b, _ := v.x.(bool); return b }

// Elems returns the elements of a leaf-list value.
func (v Value) Elems() []Value { l, _ := v.x.([]Value); return l }

// IsString reports whether v is a string-kind value.
func (v Value) IsString() bool { _, ok := v.x.(string); return ok }

// IsUint reports whether v is an unsigned integer.
func (v Value) IsUint() bool { _, ok := v.x.(uint64); return ok }

// IsInt reports whether v is a signed integer.
func (v Value) IsInt() bool { _, ok := v.x.(int64); return ok }

// IsBool reports whether v is a boolean.
func (v Value) IsBool() bool { _, ok := v.x.(bool); return ok }

// Equal reports whether two values are the same.
func (v Value) Equal(o Value) bool {
	a, aList := v.x.([]Value)
	b, bList := o.x.([]Value)
	if !aList && !bList {
		return v.x == o.x
	}
	if aList != bList || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// appendText appends v's String form to b.
func (v Value) appendText(b []byte) []byte {
	switch x := v.x.(type) {
	case string:
		return append(b, x...)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case bool:
		return strconv.AppendBool(b, x)
	}
	return append(b, v.String()...)
}

// String returns the canonical text form used in path keys and logs.
func (v Value) String() string {
	switch x := v.x.(type) {
	case string:
		return x
	case uint64:
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case []Value:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, e.String())
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}
