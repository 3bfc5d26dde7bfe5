package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"testing"
	"unicode/utf8"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// FuzzParsePath: any string either fails to parse or round-trips through
// RenderPath to a path that parses to the same elements.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/top/routes/route[prefix=10.0.0.0/24][table=254]/config/device",
		`/top/devices/device[name=a\]b\\c]/config`,
		"/a//b", "/a[k]", "/a[k=v", "/", "", "/a[k=1][k=2]", "/*/.../x[k=*]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := ParsePath(s)
		if err != nil {
			return
		}
		again, err := ParsePath(RenderPath(elems))
		if err != nil {
			t.Fatalf("rendered path %q of %q does not parse: %v", RenderPath(elems), s, err)
		}
		if RenderPath(again) != RenderPath(elems) {
			t.Fatalf("round trip of %q: %q != %q", s, RenderPath(again), RenderPath(elems))
		}
	})
}

// FuzzSetValue: any path and JSON value applied to a tree either fails
// with an error that changed nothing, or succeeds; it never panics.
func FuzzSetValue(f *testing.F) {
	seeds := []struct{ path, val string }{
		{"/top/routes/route[prefix=10.0.0.0/24][table=254]/config", `{"device":"eth0","metric":7}`},
		{"/top/routes/route[prefix=10.0.0.0/24][table=254]/config/metric", `5000`},
		{"/top/routes", `{"route":[{"prefix":"10.0.0.0/24","table":1}]}`},
		{"/top/routes/route[prefix=nope][table=1]/config/device", `"x"`},
		{"/top/posture/config/level", `"3"`},
		{"/top/devices/device[name=a]/config", `{"address":"x","name":"a"}`},
		{"/top/routes/route[prefix=10.0.0.0/24][table=254]/config/extra", `["10.0.0.0/8",1,null]`},
		{"/", `{"kedge-test:top":{"posture":{"config":{"level":2}}}}`},
	}
	for _, s := range seeds {
		f.Add(s.path, s.val, false)
		f.Add(s.path, s.val, true)
	}
	schema := testSchema(f)
	f.Fuzz(func(t *testing.T, path, val string, replace bool) {
		elems, err := ParsePath(path)
		if err != nil {
			return
		}
		tr := New(schema)
		tx, _ := tr.Begin(false)
		_ = tx.Update(mustElems(t, "/top/devices/device[name=sw1]/config/address"), &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "x"}})
		tx.Commit()
		before := dump(tr)
		tx, _ = tr.Begin(false)
		v := &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(val)}}
		if replace {
			err = tx.Replace(elems, v)
		} else {
			err = tx.Update(elems, v)
		}
		if err == nil {
			err = tx.Validate()
		}
		if err != nil {
			tx.Rollback()
			if got := dump(tr); got != before {
				t.Fatalf("failed set of %s = %s changed the tree: %v", path, val, err)
			}
			return
		}
		_ = tx.Changes()
		tx.Commit()
	})
}

func mustElems(t *testing.T, s string) []*gpb.PathElem {
	e, err := ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// FuzzJSON: the tree's JSON decoder agrees with encoding/json on every
// input encoding/json accepts as valid UTF-8, and never accepts what it
// rejects.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,false,null],"c":"x\u00e9\ud83d\ude00"}`, `[]`, `-0.5e+3`, `"\\\"\/"`, `{"a":`, `01`, `[1,]`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := parseJSON(b)
		var std any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		stdErr := d.Decode(&std)
		if stdErr == nil && d.More() {
			stdErr = errors.New("trailing")
		}
		if stdErr == nil {
			var rest any
			if d.Decode(&rest) != io.EOF {
				stdErr = errors.New("trailing")
			}
		}
		switch {
		case stdErr != nil && err == nil:
			t.Fatalf("accepted %q that encoding/json rejects: %v", b, stdErr)
		case stdErr == nil && err != nil:
			if utf8.Valid(b) {
				t.Fatalf("rejected valid %q: %v", b, err)
			}
		case err == nil && !reflect.DeepEqual(stdShape(ours), std):
			t.Fatalf("%q: got %#v, encoding/json %#v", b, ours, std)
		}
	})
}

// FuzzFastPatterns: each hand-written pattern matcher accepts exactly what
// its regular expression accepts.
func FuzzFastPatterns(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "255.255.255.255/32", "256.1.1.1/8", "01.2.3.4/8", "1.2.3.4/33", "1.2.3.4/03",
		"1.2.3.4", "1.2.3", "1.2.3.4.5", "", ".1.2.3", "1.2.3.4/", "1.2.3.4/3/4", "199.249.250.251/29", "1.2.3.4\n"} {
		f.Add(s)
	}
	res := map[string]*regexp.Regexp{}
	for text := range fastPatterns {
		res[text] = regexp.MustCompile(anchoredPrefix + text + anchoredSuffix)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for text, fast := range fastPatterns {
			if got, want := fast(s), res[text].MatchString(s); got != want {
				t.Fatalf("%q: fast matcher %v, regexp %v for %s", s, got, want, text)
			}
		}
	})
}
