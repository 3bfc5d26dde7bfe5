package tree

import (
	"errors"
	"testing"
)

// TestMergePlanPerShape: entries of one list whose members vary (the
// same names in another order, one name for another, as many members
// each) merge in one update as each does alone, and a member the schema
// lacks is refused after the plans have been made for other shapes of
// the same length, within the same transaction.
func TestMergePlanPerShape(t *testing.T) {
	entries := []string{
		`{"prefix":"10.1.0.0/16","table":1,"config":{"device":"eth0","metric":5}}`,
		`{"prefix":"10.2.0.0/16","table":1,"config":{"metric":6,"device":"eth1"}}`,
		`{"prefix":"10.3.0.0/16","table":1,"config":{"device":"eth2","tags":"x"}}`,
		`{"table":1,"prefix":"10.4.0.0/16","config":{"device":"eth3","metric":7}}`,
		`{"prefix":"10.5.0.0/16","table":1,"config":{"device":"eth4","metric":8}}`,
	}
	one, each := New(testSchema(t)), New(testSchema(t))
	all := `{"route":[`
	for i, e := range entries {
		if i > 0 {
			all += ","
		}
		all += e
		if _, err := apply(t, each, false, op{"update", "/top/routes", jsonVal(`{"route":[` + e + `]}`)}); err != nil {
			t.Fatalf("entry %d alone: %v", i, err)
		}
	}
	all += `]}`
	if _, err := apply(t, one, false, op{"update", "/top/routes", jsonVal(all)}); err != nil {
		t.Fatalf("entries together: %v", err)
	}
	if got, want := dump(one), dump(each); got != want {
		t.Fatalf("entries together:\n%s\nwant, as each alone:\n%s", got, want)
	}
	before := dump(one)
	_, err := apply(t, one, false,
		op{"update", "/top/routes", jsonVal(all)},
		op{"update", "/top/routes", jsonVal(`{"route":[{"prefix":"10.6.0.0/16","table":1,"config":{"device":"eth5","bogus":9}}]}`)})
	if !errors.Is(err, ErrUnknownPath) {
		t.Fatalf("an unknown member after the plans were made: %v, want %v", err, ErrUnknownPath)
	}
	if got := dump(one); got != before {
		t.Fatalf("a refused update changed the tree:\n%s\nwant:\n%s", got, before)
	}
}
