package tree

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"
)

// TypeKind is the base kind of a leaf type.
type TypeKind uint8

// The leaf type kinds the tree supports. Kedge's modules restrict
// themselves to these (see yang/).
const (
	TString TypeKind = iota + 1
	TInt
	TUint
	TBool
	TEnum
	TUnion
	TLeafref
)

// Type is a compiled leaf type.
type Type struct {
	Kind     TypeKind
	Name     string // typedef or built-in name, for error messages
	bits     int
	ranges   []numRange
	lengths  []numRange
	patterns []pattern
	// enums holds each enumeration value once, as the Value every leaf
	// holding it shares: 100,000 routes' "installed" are one string, not
	// 100,000 copies of it.
	enums    map[string]Value
	Members  []*Type // union members, in order
	refPath  string
	Target   *Node // leafref target leaf
	relative bool  // leafref path is relative
}

type numRange struct {
	lo, hi   int64
	ulo, uhi uint64
	unsigned bool
}

func (c *compiler) compileType(y *yang.YangType, leaf *Node) (*Type, error) {
	if y == nil {
		return nil, errors.New("leaf has no type")
	}
	t := &Type{Name: y.Name}
	switch y.Kind {
	case yang.Ystring:
		t.Kind = TString
		for _, p := range append(append([]string(nil), y.POSIXPattern...), y.Pattern...) {
			pt, err := compilePattern(p)
			if err != nil {
				return nil, err
			}
			t.patterns = append(t.patterns, pt)
		}
		t.lengths = toRanges(y.Length, true)
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64:
		t.Kind = TInt
		t.bits = intBits(y.Kind)
		t.ranges = toRanges(y.Range, false)
	case yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		t.Kind = TUint
		t.bits = intBits(y.Kind)
		t.ranges = toRanges(y.Range, true)
	case yang.Ybool:
		t.Kind = TBool
	case yang.Yenum:
		t.Kind = TEnum
		t.enums = map[string]Value{}
		if y.Enum != nil {
			for _, n := range y.Enum.Names() {
				t.enums[n] = String(n)
			}
		}
	case yang.Yunion:
		t.Kind = TUnion
		for _, m := range y.Type {
			mt, err := c.compileType(m, leaf)
			if err != nil {
				return nil, err
			}
			t.Members = append(t.Members, mt)
		}
	case yang.Yleafref:
		t.Kind = TLeafref
		t.refPath = y.Path
		c.leafrefs = append(c.leafrefs, pendingRef{leaf: leaf, t: t})
	default:
		return nil, fmt.Errorf("unsupported YANG type %s (%v)", y.Name, y.Kind)
	}
	return t, nil
}

func intBits(k yang.TypeKind) int {
	switch k {
	case yang.Yint8, yang.Yuint8:
		return 8
	case yang.Yint16, yang.Yuint16:
		return 16
	case yang.Yint32, yang.Yuint32:
		return 32
	}
	return 64
}

func toRanges(r yang.YangRange, unsigned bool) []numRange {
	var out []numRange
	for _, yr := range r {
		nr := numRange{unsigned: unsigned}
		nr.lo, nr.ulo = numBound(yr.Min)
		nr.hi, nr.uhi = numBound(yr.Max)
		out = append(out, nr)
	}
	return out
}

func numBound(n yang.Number) (int64, uint64) {
	if n.Negative {
		if n.Value > math.MaxInt64 {
			return math.MinInt64, 0
		}
		return -int64(n.Value), 0
	}
	if n.Value > math.MaxInt64 {
		return math.MaxInt64, n.Value
	}
	return int64(n.Value), n.Value
}

// base follows leafrefs to the type that values actually have.
func (t *Type) base() *Type {
	for i := 0; t.Kind == TLeafref && t.Target != nil && i < 16; i++ {
		t = t.Target.Type
	}
	return t
}

// ParseText parses the text form of a value, as it appears in a path key
// or in JSON strings.
func (t *Type) ParseText(s string) (Value, error) {
	b := t.base()
	switch b.Kind {
	case TString:
		return b.checkString(s)
	case TEnum:
		v, ok := b.enums[s]
		if !ok {
			return Value{}, fmt.Errorf("%q is not one of %s", s, b.enumList())
		}
		return v, nil
	case TUint:
		n, err := strconv.ParseUint(s, 10, b.bits)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a uint%d", s, b.bits)
		}
		return b.checkUint(n)
	case TInt:
		n, err := strconv.ParseInt(s, 10, b.bits)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an int%d", s, b.bits)
		}
		return b.checkInt(n)
	case TBool:
		switch s {
		case "true":
			return Bool(true), nil
		case "false":
			return Bool(false), nil
		}
		return Value{}, fmt.Errorf("%q is not a boolean", s)
	case TUnion:
		var reasons []string
		for _, m := range b.Members {
			v, err := m.ParseText(s)
			if err == nil {
				return v, nil
			}
			reasons = append(reasons, err.Error())
		}
		return Value{}, fmt.Errorf("%q matches no member of union %s (%s)", s, b.Name, strings.Join(reasons, "; "))
	}
	return Value{}, fmt.Errorf("unresolved type %s", t.Name)
}

// ParseJSON converts a decoded JSON scalar (string, json.Number, bool)
// into a Value. Integers may arrive as numbers or, as RFC 7951 requires
// for 64-bit ones, as strings. A boolean may also arrive as the string
// "true" or "false": tools that carry every attribute as a string (a
// generic gNMI Terraform resource's map(string)) send it so, and nothing
// else can be meant by it.
func (t *Type) ParseJSON(x any) (Value, error) {
	b := t.base()
	switch v := x.(type) {
	case string:
		if b.Kind == TBool {
			switch v {
			case "true":
				return Bool(true), nil
			case "false":
				return Bool(false), nil
			}
			return Value{}, fmt.Errorf("%q is a string, want a boolean", v)
		}
		return t.parseBoxed(v, x)
	case json.Number:
		switch b.Kind {
		case TUint, TInt:
			return t.ParseText(v.String())
		case TUnion:
			return t.ParseText(v.String())
		}
		return Value{}, fmt.Errorf("%s is a number, want %s", v, b.describe())
	case bool:
		if b.Kind == TBool {
			return Bool(v), nil
		}
		if b.Kind == TUnion {
			return t.ParseText(strconv.FormatBool(v))
		}
		return Value{}, fmt.Errorf("%v is a boolean, want %s", v, b.describe())
	case float64:
		if b.Kind == TUint || b.Kind == TInt {
			if v != math.Trunc(v) {
				return Value{}, fmt.Errorf("%v is not an integer", v)
			}
			return t.ParseText(strconv.FormatFloat(v, 'f', -1, 64))
		}
	case nil:
		return Value{}, fmt.Errorf("null is not a value of %s", b.describe())
	case *jsonObject:
		// Named as when objects were decoded into maps, so a client sees
		// the message it always saw.
		return Value{}, fmt.Errorf("map[string]interface {} is not a value of %s", b.describe())
	}
	return Value{}, fmt.Errorf("%T is not a value of %s", x, b.describe())
}

// CheckUint validates an unsigned integer against the type.
func (t *Type) CheckUint(n uint64) (Value, error) {
	b := t.base()
	switch b.Kind {
	case TUint:
		if b.bits < 64 && n >= 1<<uint(b.bits) {
			return Value{}, fmt.Errorf("%d overflows uint%d", n, b.bits)
		}
		return b.checkUint(n)
	case TInt:
		if n > math.MaxInt64 {
			return Value{}, fmt.Errorf("%d overflows int%d", n, b.bits)
		}
		return t.CheckInt(int64(n))
	case TUnion:
		return t.ParseText(strconv.FormatUint(n, 10))
	}
	return Value{}, fmt.Errorf("an integer is not a value of %s", b.describe())
}

// CheckInt validates a signed integer against the type.
func (t *Type) CheckInt(n int64) (Value, error) {
	b := t.base()
	switch b.Kind {
	case TInt:
		if b.bits < 64 && (n >= 1<<uint(b.bits-1) || n < -(1<<uint(b.bits-1))) {
			return Value{}, fmt.Errorf("%d overflows int%d", n, b.bits)
		}
		return b.checkInt(n)
	case TUint:
		if n < 0 {
			return Value{}, fmt.Errorf("%d is negative, want uint%d", n, b.bits)
		}
		return t.CheckUint(uint64(n))
	case TUnion:
		return t.ParseText(strconv.FormatInt(n, 10))
	}
	return Value{}, fmt.Errorf("an integer is not a value of %s", b.describe())
}

// CheckBool validates a boolean against the type.
func (t *Type) CheckBool(v bool) (Value, error) {
	if t.base().Kind == TBool {
		return Bool(v), nil
	}
	return t.ParseText(strconv.FormatBool(v))
}

func (t *Type) checkString(s string) (Value, error) {
	if err := t.validString(s); err != nil {
		return Value{}, err
	}
	return String(s), nil
}

// validString checks s against the string type's lengths and patterns.
func (t *Type) validString(s string) error {
	if len(t.lengths) > 0 {
		n := uint64(len([]rune(s)))
		ok := false
		for _, r := range t.lengths {
			if n >= r.ulo && n <= r.uhi {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("%q has length %d outside %s", s, n, rangeText(t.lengths))
		}
	}
	for _, pt := range t.patterns {
		if !pt.match(s) {
			return fmt.Errorf("%q does not match %s pattern %s", s, t.Name, pt.text)
		}
	}
	return nil
}

// parseBoxed is ParseText of a JSON string s that the decoder gave as x:
// a string value keeps x rather than boxing s again, so a bulk Set's
// strings cost one allocation each, or none where the decoder shares a
// repeated one (every route's device). The result and errors are
// ParseText's.
func (t *Type) parseBoxed(s string, x any) (Value, error) {
	b := t.base()
	switch b.Kind {
	case TString:
		if b.validString(s) == nil {
			return Value{x: x}, nil
		}
	case TUnion:
		for _, m := range b.Members {
			if v, err := m.parseBoxed(s, x); err == nil {
				return v, nil
			}
		}
	}
	return t.ParseText(s)
}

func (t *Type) checkUint(n uint64) (Value, error) {
	if len(t.ranges) == 0 {
		return Uint(n), nil
	}
	for _, r := range t.ranges {
		if n >= r.ulo && n <= r.uhi {
			return Uint(n), nil
		}
	}
	return Value{}, fmt.Errorf("%d is outside %s", n, rangeText(t.ranges))
}

func (t *Type) checkInt(n int64) (Value, error) {
	if len(t.ranges) == 0 {
		return Int(n), nil
	}
	for _, r := range t.ranges {
		if n >= r.lo && n <= r.hi {
			return Int(n), nil
		}
	}
	return Value{}, fmt.Errorf("%d is outside %s", n, rangeText(t.ranges))
}

func rangeText(rs []numRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.unsigned {
			parts[i] = fmt.Sprintf("%d..%d", r.ulo, r.uhi)
		} else {
			parts[i] = fmt.Sprintf("%d..%d", r.lo, r.hi)
		}
	}
	return strings.Join(parts, " | ")
}

func (t *Type) enumList() string {
	names := make([]string, 0, len(t.enums))
	for n := range t.enums {
		names = append(names, n)
	}
	sort.Strings(names)
	return "{" + strings.Join(names, ", ") + "}"
}

func (t *Type) describe() string {
	switch t.Kind {
	case TString:
		return "a string (" + t.Name + ")"
	case TEnum:
		return "an enumeration " + t.enumList()
	case TUint:
		return fmt.Sprintf("a uint%d", t.bits)
	case TInt:
		return fmt.Sprintf("an int%d", t.bits)
	case TBool:
		return "a boolean"
	case TUnion:
		return "a union " + t.Name
	}
	return t.Name
}

// JSONKind says how a value of this type is written in JSON: as a string,
// a number, or a boolean. ietf selects RFC 7951 (64-bit integers as strings).
func (t *Type) jsonNumber(ietf bool) bool {
	b := t.base()
	if b.Kind != TUint && b.Kind != TInt {
		return false
	}
	return !(ietf && b.bits == 64)
}
