package tree

import (
	"fmt"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// ParsePath parses a gNMI path in string form (/a/b[k=v][k2=v2]/c), with
// backslash escapes for ']' and '\' inside key values. It is the inverse
// of Inst.PathString.
func ParsePath(s string) ([]*gpb.PathElem, error) {
	in := strings.TrimPrefix(s, "/")
	if in == "" {
		return nil, nil
	}
	var elems []*gpb.PathElem
	i := 0
	for {
		start := i
		for i < len(in) && in[i] != '/' && in[i] != '[' {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("parse path %q: empty element at offset %d", s, start)
		}
		e := &gpb.PathElem{Name: in[start:i]}
		for i < len(in) && in[i] == '[' {
			eq := strings.IndexByte(in[i:], '=')
			if eq < 0 {
				return nil, fmt.Errorf("parse path %q: key without '='", s)
			}
			k := in[i+1 : i+eq]
			if k == "" || strings.ContainsAny(k, "[]/") {
				return nil, fmt.Errorf("parse path %q: bad key name %q", s, k)
			}
			i += eq + 1
			var v strings.Builder
			closed := false
			for i < len(in) {
				c := in[i]
				if c == '\\' && i+1 < len(in) {
					v.WriteByte(in[i+1])
					i += 2
					continue
				}
				i++
				if c == ']' {
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("parse path %q: unterminated key %q", s, k)
			}
			if e.Key == nil {
				e.Key = map[string]string{}
			}
			if _, dup := e.Key[k]; dup {
				return nil, fmt.Errorf("parse path %q: duplicate key %q", s, k)
			}
			e.Key[k] = v.String()
		}
		elems = append(elems, e)
		if i == len(in) {
			return elems, nil
		}
		if in[i] != '/' {
			return nil, fmt.Errorf("parse path %q: unexpected %q at offset %d", s, in[i], i)
		}
		i++
		if i == len(in) {
			return nil, fmt.Errorf("parse path %q: trailing '/'", s)
		}
	}
}
