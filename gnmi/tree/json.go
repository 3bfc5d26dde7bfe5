package tree

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSON decodes one JSON value into the shapes encoding/json produces
// with UseNumber (string, json.Number, bool, nil, []any), except that an
// object is a *jsonObject: its members in document order. A bulk Set of
// 100,000 routes is 200,000 small JSON objects; this decoder is about
// three times faster than encoding/json's reflection path for them, and
// stricter: invalid UTF-8 is an error, not U+FFFD.
//
// The decoded form lives only until the transaction has merged it, so it
// is built to cost few allocations rather than to be kept: objects and
// their members are carved from shared chunks (where a map cost two
// allocations an object), arrays are sized once, member names are
// decoded once, and a literal repeated member after member (a route's
// "table":254, its device, a key's value again in its config mirror) is
// boxed once and shared.
func parseJSON(b []byte) (any, error) {
	var p jsonParser
	return p.parse(b)
}

// parse decodes b. A parser used again (a transaction's, for its
// operations' values) carves on from its chunks and keeps its shared
// names and values, so a Set of many small values does not pay for them
// value after value.
func (p *jsonParser) parse(b []byte) (any, error) {
	p.b, p.i = b, 0
	defer func() {
		// The stacks are cleared once, whole, here rather than object by
		// object (a write barrier a member while the collector marks):
		// what they held past their length is garbage only from now on.
		p.b = nil
		clear(p.stack[:cap(p.stack)])
		clear(p.elems[:cap(p.elems)])
		p.stack, p.elems = p.stack[:0], p.elems[:0]
	}()
	p.space()
	v, err := p.value(0, p.elemName())
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.errf("trailing data after the value")
	}
	return v, nil
}

const maxJSONDepth = 64

// jsonObject is a decoded JSON object. A name given twice is looked up
// as its last member, as encoding/json keeps the last.
type jsonObject struct{ m []jsonMember }

// jsonMember is one member of an object. Its name is the decoder's
// shared one (the same *jsonName object after object, which merge plans
// compare), 24 bytes a member rather than 32 with the string.
type jsonMember struct {
	nm  *jsonName
	val any
}

// name returns the member's name.
func (m jsonMember) name() string { return m.nm.s }

// get returns the value of member name.
func (o *jsonObject) get(name string) (any, bool) {
	if i := o.index(name); i >= 0 {
		return o.m[i].val, true
	}
	return nil, false
}

// index returns the index of member name (the last given), or -1.
func (o *jsonObject) index(name string) int {
	for i := len(o.m) - 1; i >= 0; i-- {
		if o.m[i].nm.s == name {
			return i
		}
	}
	return -1
}

// getQualified returns the value of the member naming n module-qualified
// ("module:name").
func (o *jsonObject) getQualified(n *Node) (any, bool) {
	if i := o.indexQualified(n); i >= 0 {
		return o.m[i].val, true
	}
	return nil, false
}

// indexQualified returns the index of the member naming n
// module-qualified (the last given), or -1.
func (o *jsonObject) indexQualified(n *Node) int {
	for i := len(o.m) - 1; i >= 0; i-- {
		if name := o.m[i].nm.s; name != n.Name && nameIs(name, n) {
			return i
		}
	}
	return -1
}

// Len is the number of members, a name given twice counted twice.
func (o *jsonObject) Len() int { return len(o.m) }

// chunk sizes of the decoder's shared allocations; names stop being
// added past maxShared, so an input of unique names costs no more than
// one without sharing.
const (
	objChunk    = 256
	memberChunk = 1024
	maxShared   = 4096
)

type jsonParser struct {
	b []byte
	i int
	// objs and members are chunks objects are carved from; stack holds
	// the members (and elems the elements) of the objects and arrays
	// being decoded, innermost last.
	objs    []jsonObject
	members []jsonMember
	stack   []jsonMember
	elems   []any
	// share turns on sharing, through names. A parser used once for a
	// small value has nothing to share.
	share bool
	names *jsonNames
	// splitMin, when not 0, is how much input must be left at an
	// outermost array for it to be decoded in parts (jsonsplit.go), and
	// splitParts how many (0: one a core); inSplit is set while one is.
	splitMin   int
	splitParts int
	inSplit    bool
}

// jsonNames are the member names a sharing parser has decoded, each with
// the value last decoded for it (see shared); recent is a direct-mapped
// cache in front of the map (a bulk Set's names repeat object after
// object, and comparing one costs less than hashing it), elem the array
// elements' own. A tree keeps them from one transaction to the next
// (reset), so that a small Set does not allocate its few names again.
type jsonNames struct {
	m      map[string]*jsonName
	recent [64]*jsonName
	elem   jsonName
}

// maxKeptNames bounds the names a tree keeps between transactions; a
// transaction that decoded more leaves them to the collector.
const maxKeptNames = 256

// reset forgets the names' last values, and reports whether the names
// are few enough to keep.
func (ns *jsonNames) reset() bool {
	if len(ns.m) > maxKeptNames {
		return false
	}
	for _, n := range ns.m {
		n.last = nil
	}
	ns.elem.last = nil
	return true
}

// jsonName is a member name as the decoder shares it: the name, and the
// string or number last decoded as the value of a member of that name.
type jsonName struct {
	s    string
	last any
}

// object returns a new object holding ms, copied out of the stack.
func (p *jsonParser) newObject(ms []jsonMember) *jsonObject {
	if len(p.objs) == cap(p.objs) {
		// Chunks start small and double: most values are one small
		// object (a single route's config), a few are 200,000.
		p.objs = make([]jsonObject, 0, min(max(4, 2*cap(p.objs)), objChunk))
	}
	p.objs = p.objs[:len(p.objs)+1]
	o := &p.objs[len(p.objs)-1]
	if len(ms) == 0 {
		return o
	}
	if cap(p.members)-len(p.members) < len(ms) {
		p.members = make([]jsonMember, 0, max(min(max(8, 2*cap(p.members)), memberChunk), len(ms)))
	}
	n := len(p.members)
	p.members = append(p.members, ms...)
	o.m = p.members[n : n+len(ms) : n+len(ms)]
	return o
}

// name returns the shared member name s, as decoded before or new; nil
// when the parser does not share or holds maxShared names already.
func (p *jsonParser) name(s []byte) *jsonName {
	if !p.share || len(s) == 0 {
		return nil
	}
	ns := p.names
	h := (len(s)*7 + int(s[0]) + 3*int(s[len(s)-1])) & (len(ns.recent) - 1)
	if n := ns.recent[h]; n != nil && n.s == string(s) {
		return n
	}
	n, ok := ns.m[string(s)]
	if !ok {
		if len(ns.m) >= maxShared {
			return nil
		}
		if ns.m == nil {
			ns.m = map[string]*jsonName{}
		}
		n = &jsonName{s: string(s)}
		ns.m[n.s] = n
	}
	ns.recent[h] = n
	return n
}

// shared returns the boxed string or number (json.Number) of text raw:
// the one last decoded as the value of a member named nm (or as an array
// element) when it had the same text, else a new one, which nm keeps
// (nil: not shared). A bulk Set repeats values member by member (every
// route's table and device) and a key's value in its config mirror.
func (p *jsonParser) shared(nm *jsonName, number bool, raw []byte) any {
	if nm != nil {
		switch x := nm.last.(type) {
		case string:
			if !number && x == string(raw) {
				return nm.last
			}
		case json.Number:
			if number && string(x) == string(raw) {
				return nm.last
			}
		}
	}
	var v any
	if number {
		v = json.Number(raw)
	} else {
		v = string(raw)
	}
	if nm != nil {
		nm.last = v
	}
	return v
}

func (p *jsonParser) errf(format string, args ...any) error {
	return fmt.Errorf("decode JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// elemName is the name an array element's (or a lone value's) strings
// and numbers are shared under: none when the parser does not share.
func (p *jsonParser) elemName() *jsonName {
	if !p.share {
		return nil
	}
	return &p.names.elem
}

// value decodes the value of the member named nm (elemName in an array
// or alone; nil shares nothing).
func (p *jsonParser) value(depth int, nm *jsonName) (any, error) {
	if depth > maxJSONDepth {
		return nil, p.errf("nested deeper than %d", maxJSONDepth)
	}
	if p.i >= len(p.b) {
		return nil, p.errf("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, raw, err := p.str()
		if raw != nil {
			return p.shared(nm, false, raw), nil
		}
		return s, err
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(nm)
	default:
		return nil, p.errf("unexpected character %q", c)
	}
}

func (p *jsonParser) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return p.errf("invalid literal")
	}
	p.i += len(s)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	base := len(p.stack)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return p.newObject(nil), nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errf("expected a member name")
		}
		k, raw, err := p.str()
		if err != nil {
			return nil, err
		}
		var nm *jsonName // shared: nil when the parser does not share
		if raw != nil {
			nm = p.name(raw)
		}
		key := nm
		if key == nil {
			if raw != nil {
				k = string(raw)
			}
			key = &jsonName{s: k}
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errf("expected ':' after member name")
		}
		p.i++
		p.space()
		v, err := p.value(depth+1, nm)
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, jsonMember{nm: key, val: v})
		p.space()
		if p.i >= len(p.b) {
			return nil, p.errf("unterminated object")
		}
		if p.b[p.i] == '}' {
			p.i++
			o := p.newObject(p.stack[base:])
			p.stack = p.stack[:base]
			return o, nil
		}
		if p.b[p.i] != ',' {
			return nil, p.errf("expected ',' or '}' in object")
		}
		p.i++
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	base := len(p.elems)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return []any{}, nil
	}
	// An outermost array with much input left may be split (jsonsplit.go)
	// once its first two elements show what an element's start looks like.
	var s *split
	try := base == 0 && p.splitting()
	var end0 int
	for {
		p.space()
		if s != nil {
			if k := s.after(0, p.i); k < len(s.at) && s.at[k] == p.i {
				a, err := p.join(s, k, p.elems)
				p.elems, p.inSplit = p.elems[:0], false
				return a, err
			}
		}
		start := p.i
		v, err := p.value(depth+1, p.elemName())
		if err != nil {
			return nil, p.unsplit(s, err)
		}
		p.elems = appendDoubling(p.elems, v)
		if try {
			switch len(p.elems) {
			case 1:
				end0 = p.i
			case 2:
				try = false
				if s = p.startSplit(depth, end0, start, p.i); s != nil {
					p.inSplit = true
				}
			}
		}
		p.space()
		if p.i >= len(p.b) {
			return nil, p.unsplit(s, p.errf("unterminated array"))
		}
		if p.b[p.i] == ']' {
			p.i++
			p.unsplit(s, nil)
			if base == 0 && len(p.elems) > objChunk {
				// The outermost array being built, and a big one (a bulk
				// Set's 100,000 entries): handed over rather than copied.
				a := p.elems
				p.elems = nil
				return a, nil
			}
			a := make([]any, len(p.elems)-base)
			copy(a, p.elems[base:])
			p.elems = p.elems[:base]
			return a, nil
		}
		if p.b[p.i] != ',' {
			return nil, p.unsplit(s, p.errf("expected ',' or ']' in array"))
		}
		p.i++
	}
}

// unsplit ends split s, if any (its parts' starts were not elements'
// starts, or the array failed before them), and returns err.
func (p *jsonParser) unsplit(s *split, err error) error {
	if s != nil {
		s.end()
		p.inSplit = false
	}
	return err
}

// str decodes a string. One without escapes (most) is returned as raw,
// its bytes in the input, for the caller to share; else as s.
func (p *jsonParser) str() (s string, raw []byte, err error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes. One table lookup a byte finds the end (or
	// an escape, or a control character), and the bytes' union says
	// whether any is past ASCII and UTF-8 needs checking.
	var union byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		if strStop[c] {
			if c == '"' {
				b := p.b[start:p.i]
				p.i++
				if union >= utf8.RuneSelf && !utf8.Valid(b) {
					return "", nil, p.errf("invalid UTF-8 in string")
				}
				return "", b, nil
			}
			if c == '\\' {
				break
			}
			return "", nil, p.errf("control character in string")
		}
		union |= c
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", nil, p.errf("invalid UTF-8 in string")
			}
			return string(buf), nil, nil
		case c < 0x20:
			return "", nil, p.errf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", nil, err
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with a following low one; anything
				// else becomes U+FFFD and the next escape stands alone, as
				// in encoding/json.
				paired := false
				if r < 0xdc00 && p.i+5 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, err := p.hex4()
					if err == nil && r2 >= 0xdc00 && r2 <= 0xdfff {
						r, paired = utf16.DecodeRune(r, r2), true
					} else {
						p.i = save
					}
				}
				if !paired {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", nil, p.errf("invalid escape \\%c", e)
		}
	}
	return "", nil, p.errf("unterminated string")
}

// strStop marks the bytes that end a string's fast path: the closing
// quote, a backslash and the control characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func (p *jsonParser) hex4() (rune, error) {
	if len(p.b)-p.i < 4 {
		return 0, p.errf("short \\u escape")
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, p.errf("bad \\u escape")
	}
	p.i += 4
	return rune(n), nil
}

func (p *jsonParser) number(nm *jsonName) (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errf("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	return p.shared(nm, true, p.b[start:p.i]), nil
}
