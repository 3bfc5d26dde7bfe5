package tree

import (
	"path/filepath"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// testSchema compiles testdata/kedge-test.yang.
func testSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := LoadModules(nil, []string{filepath.Join("testdata", "kedge-test.yang")}, []string{"kedge-test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// p parses a gNMI string path like /top/routes/route[prefix=1.2.3.0/24][table=1].
func p(t testing.TB, s string) []*gpb.PathElem {
	t.Helper()
	elems, err := ParsePath(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return elems
}

func jsonVal(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func strVal(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func uintVal(n uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
}
