package tree

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null],"c":"x\u00e9\ud83d\ude00"}`,
		`"\ud800"`, `"\ud800\u0041"`, `"\ud800\ud800\udc00"`, `"\udc00x"`,
		`{"k":{"n":-0.5e+3,"z":0,"e":1E9}}`, `"\\\"\/\b\f\n\r\t"`, ` [ 1 , 2 ] `,
		// A name given twice keeps its last value; repeated names and short
		// literals are shared, long ones not; objects and members outgrow
		// their chunks.
		`{"a":1,"b":2,"a":{"a":[3]}}`, `{"a\u0062":1,"ab":"x","ab":"y"}`, `[254,"254",254,"rtA","rtA",true,"0123456789abcdefgh","0123456789abcdefgh"]`,
		manyObjects(300, 5), manyObjects(3, 1100), `{}`, `[{},[],{"":""}]`,
	} {
		var std any
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		if err := d.Decode(&std); err != nil {
			t.Fatal(err)
		}
		got, err := parseJSON([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if !reflect.DeepEqual(stdShape(got), std) {
			t.Fatalf("%s: got %#v, want %#v", s, got, std)
		}
	}
	for _, bad := range []string{`{"a":`, `01`, `[1,]`, "\"\xff\"", `{"a" 1}`, `nul`, `1 2`, `"\x"`, `-`, `1.`, `{"a":1,}`} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

// stdShape converts the decoder's objects to the maps encoding/json
// decodes them into (a name given twice keeps its last value), to compare
// the two.
func stdShape(x any) any {
	switch v := x.(type) {
	case *jsonObject:
		m := make(map[string]any, v.Len())
		for _, mb := range v.m {
			m[mb.name()] = stdShape(mb.val)
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = stdShape(e)
		}
		return out
	}
	return x
}

// manyObjects is an array of n objects of m members each, shaped as the
// entries of a bulk Set.
func manyObjects(n, m int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j := range m {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"m%d":{"prefix":"10.0.%d.%d/32","table":254}`, j, i%256, j%256)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String()
}
