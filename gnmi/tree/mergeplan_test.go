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

// TestMergePlanNotAcrossWriters: a plan made while a state writer merged
// into a config false list is not the next transaction's, by a config
// writer, with the same member names (which the tree keeps between
// transactions): the config writer is refused the list where the check of
// its members refuses it, as on a tree that made no plan for those names.
func TestMergePlanNotAcrossWriters(t *testing.T) {
	sessions := `{"session":[{"id":"a","state":{"id":"a","peer":"x"}}]}`
	planned, fresh := New(testSchema(t)), New(testSchema(t))
	if _, err := apply(t, planned, true, op{"update", "/top/sessions", jsonVal(sessions)}); err != nil {
		t.Fatal(err)
	}
	// The same entry written at the list: no plan for the container.
	if _, err := apply(t, fresh, true, op{"update", "/top/sessions/session", jsonVal(`[{"id":"a","state":{"id":"a","peer":"x"}}]`)}); err != nil {
		t.Fatal(err)
	}
	_, got := apply(t, planned, false, op{"update", "/top/sessions", jsonVal(sessions)})
	_, want := apply(t, fresh, false, op{"update", "/top/sessions", jsonVal(sessions)})
	if !errors.Is(want, ErrReadOnly) {
		t.Fatalf("a config writer merging into a config false list: %v, want %v", want, ErrReadOnly)
	}
	if got == nil || got.Error() != want.Error() {
		t.Fatalf("after a state writer's plan for the same names: %v, want %v", got, want)
	}
}
