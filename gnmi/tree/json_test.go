package tree

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null],"c":"x\u00e9\ud83d\ude00"}`,
		`"\ud800"`, `"\ud800\u0041"`, `"\ud800\ud800\udc00"`, `"\udc00x"`,
		`{"k":{"n":-0.5e+3,"z":0,"e":1E9}}`, `"\\\"\/\b\f\n\r\t"`, ` [ 1 , 2 ] `,
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
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("%s: got %#v, want %#v", s, got, std)
		}
	}
	for _, bad := range []string{`{"a":`, `01`, `[1,]`, "\"\xff\"", `{"a" 1}`, `nul`, `1 2`, `"\x"`, `-`, `1.`, `{"a":1,}`} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}
