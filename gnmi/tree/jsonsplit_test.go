package tree

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// exactShape is a decoded value with its objects' members in order,
// names given twice kept twice, to compare two decodings exactly.
func exactShape(x any) any {
	switch v := x.(type) {
	case *jsonObject:
		out := []any{"{"}
		for _, m := range v.m {
			out = append(out, m.name(), exactShape(m.val))
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = exactShape(e)
		}
		return out
	}
	return x
}

// decodeBoth decodes b serially and split in parts (over any input
// size), as a transaction's parser does, and fails unless both give the
// same value or the same error.
func decodeBoth(t testing.TB, b []byte, parts int) {
	t.Helper()
	serial := &jsonParser{share: true, names: &jsonNames{}}
	want, wantErr := serial.parse(b)
	split := &jsonParser{share: true, names: &jsonNames{}, splitMin: 1, splitParts: parts}
	got, err := split.parse(b)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("%d parts of %.200q: error %v, serially %v", parts, b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(exactShape(got), exactShape(want)) {
		t.Fatalf("%d parts of %.200q: decoded differently", parts, b)
	}
}

// routesArray is n bulk-Set route entries, in a list wrapper when
// wrapped, with a leaf-list of mixed values each when tags.
func routesArray(n int, wrapped, tags bool) string {
	var b strings.Builder
	if wrapped {
		b.WriteString(`{"route":`)
	}
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		p := fmt.Sprintf(`"10.%d.%d.%d/32"`, i/65536%256, i/256%256, i%256)
		t := ""
		if tags {
			t = `,"tags":[1,"a",{"x":null}]`
		}
		fmt.Fprintf(&b, `{"prefix":%s,"table":254,"config":{"prefix":%s,"table":254,"device":"rtA"%s}}`, p, p, t)
	}
	b.WriteByte(']')
	if wrapped {
		b.WriteString(`,"after":[true]}`)
	}
	return b.String()
}

// TestSplitDecodes: a big array decoded in parts is the array decoded
// serially, and was decoded in parts: the names of its last entry are
// another parser's than its first's.
func TestSplitDecodes(t *testing.T) {
	b := []byte(routesArray(3000, true, true))
	for _, parts := range []int{2, 3, 8} {
		decodeBoth(t, b, parts)
		p := &jsonParser{share: true, names: &jsonNames{}, splitMin: 1, splitParts: parts}
		v, err := p.parse(b)
		if err != nil {
			t.Fatal(err)
		}
		arr := v.(*jsonObject).m[0].val.([]any)
		first, last := arr[0].(*jsonObject), arr[len(arr)-1].(*jsonObject)
		if first.m[0].nm == last.m[0].nm {
			t.Fatalf("%d parts: the array was decoded by one parser", parts)
		}
	}
	// Below the threshold, and with one part, it is not split.
	for _, p := range []*jsonParser{
		{share: true, names: &jsonNames{}, splitMin: len(b)},
		{share: true, names: &jsonNames{}, splitMin: 1, splitParts: 1},
	} {
		v, err := p.parse(b)
		if err != nil {
			t.Fatal(err)
		}
		arr := v.(*jsonObject).m[0].val.([]any)
		if arr[0].(*jsonObject).m[0].nm != arr[len(arr)-1].(*jsonObject).m[0].nm {
			t.Fatal("split below the threshold")
		}
	}
}

// TestSplitErrorsAreSerial: a big array damaged anywhere, one byte
// replaced, removed or the input cut short, fails in parts with exactly
// the serial decoder's error (the first in document order) or decodes
// to the same value.
func TestSplitErrorsAreSerial(t *testing.T) {
	good := []byte(routesArray(400, true, true))
	rnd := rand.New(rand.NewSource(17))
	bytes := []byte("\"{}[],:\\ x0-tn\x01\xff")
	cases := 0
	for range 600 {
		b := append([]byte(nil), good...)
		i := rnd.Intn(len(b))
		switch rnd.Intn(4) {
		case 0:
			b = b[:i]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b[i] = bytes[rnd.Intn(len(bytes))]
			if rnd.Intn(2) == 0 { // and a second error after it
				j := i + rnd.Intn(len(b)-i)
				b[j] = bytes[rnd.Intn(len(bytes))]
			}
		}
		decodeBoth(t, b, 2+rnd.Intn(5))
		cases++
	}
	// Entries of another shape: arrays, strings holding the separator.
	for _, s := range []string{
		`[[1,2],[3,4],[5,6],[7,8],[9,10],[11,12],[13,14]]`,
		`["},{\"a\":","},{\"a\":","},{\"a\":","},{\"a\":","x"]`,
		`[{"a":"},{\"a\":"},{"a":"},{\"a\":"},{"a":"},{\"a\":"},{"a":1}]`,
		`[{"a":[{"a":1},{"a":2}]},{"a":[{"a":3},{"a":4}]},{"a":[{"a":5},{"a":6}]}]`,
		`[{"a":1} , {"a":2} ,{"a":3}, {"a":4},{"a":5}]`,
		`[{"a":1},{"a":2},{"a":3},{"a":4},{"a":5}`,
		`[{"a":1},{"a":2},{"a":3},{"a":4},{"a":5}]]`,
		`{"r":[{"a":1},{"a":2},{"a":3},{"a":4},{"a":5}],"s":[{"a":1},{"a":2},{"a":3}]}`,
	} {
		for parts := 2; parts <= 6; parts++ {
			decodeBoth(t, []byte(s), parts)
		}
	}
	t.Logf("%d damaged inputs", cases)
}

// FuzzSplitJSON: any input decodes in parts exactly as serially, value
// or error.
func FuzzSplitJSON(f *testing.F) {
	for _, s := range []string{
		routesArray(5, false, true), routesArray(4, true, false), `[1,2,3,4,5,6,7,8]`, `[{"a":1},{"a":2},{"a":"},{\"a\":"},{"a":4}]`,
		`[{"a":[{"a":1},{"a":2}]},{"a":3},{"a":4},{"a":5}]`, `[{"a":1},{"a":2},{"a":3}`, `[[],[],[],[]]`,
	} {
		f.Add([]byte(s), uint8(2))
		f.Add([]byte(s), uint8(4))
	}
	f.Fuzz(func(t *testing.T, b []byte, parts uint8) {
		decodeBoth(t, b, 2+int(parts%7))
	})
}

// BenchmarkDecodeBulkSet decodes a bulk Set's 100,000 routes (10 MB) as
// a transaction's parser does, serially and split in one part a core,
// side by side in one run.
func BenchmarkDecodeBulkSet(b *testing.B) {
	in := []byte(routesArray(100000, true, false))
	for _, bm := range []struct {
		name     string
		splitMin int
	}{{"serial", 0}, {"split", splitMinBytes}} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for range b.N {
				p := &jsonParser{share: true, names: &jsonNames{}, splitMin: bm.splitMin}
				if _, err := p.parse(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
