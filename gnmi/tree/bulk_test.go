package tree

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// routesJSON is the value of one update of n routes at /top/routes, as a
// bulk gNMI Set sends it: keys, then the config with its key mirrors and
// a device every route shares.
func routesJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"route":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := `"10.` + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256) + `.0/24"`
		b.WriteString(`{"prefix":` + p + `,"table":254,"config":{"prefix":` + p + `,"table":254,"device":"eth0"}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestBulkUpdateAllocations: merging a bulk update's routes and deriving
// their changes costs a few allocations a route (the entry and its
// config, their values, the entry's identity and place in its list, its
// prefix), not one or more per JSON member and value: 36.1 a route on
// f7f6a79, 11.1 since the decoder builds objects as member slices, shares
// repeated values and the tree allocates an instance with its arrays, 9.1
// since an entry's identity comes with its key array, its key string is
// one allocation and its entry in the mandatory check's list no map's
// (9.5 under -race, where 31bf238 takes 11.8).
func TestBulkUpdateAllocations(t *testing.T) {
	const n = 2000
	tr := New(testSchema(t))
	val, at := jsonVal(routesJSON(n)), p(t, "/top/routes")
	allocs := testing.AllocsPerRun(3, func() {
		tx, err := tr.Begin(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Update(at, val); err != nil {
			t.Fatal(err)
		}
		if got := len(tx.Changes()); got != 5*n {
			t.Fatalf("%d changes, want %d", got, 5*n)
		}
		tx.Rollback()
	})
	t.Logf("%.1f allocations a route", allocs/n)
	if per := allocs / n; per > 10 {
		t.Fatalf("%.1f allocations a route, want at most 10", per)
	}
}

// TestJSONMemberGivenTwice: a member given twice takes its last value, in
// an object and in the one-member object that wraps a list, as when JSON
// objects were decoded into maps; the same text in two members of
// different leaves is two values, each checked against its own type.
func TestJSONMemberGivenTwice(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false,
		op{"update", r1 + "/config", jsonVal(`{"device":"eth0","metric":5,"device":"eth1"}`)},
		op{"update", "/top/routes/route", jsonVal(`{"route":[{"prefix":"10.9.0.0/16","table":1,"config":{"device":"x"}}],` +
			`"route":[{"prefix":"10.8.0.0/16","table":1,"config":{"device":"eth8","tags":"eth8"}}]}`)},
	); err != nil {
		t.Fatal(err)
	}
	got := dump(tr)
	for _, want := range []string{r1 + "/config/device=eth1", r1 + "/config/metric=5",
		"/top/routes/route[prefix=10.8.0.0/16][table=1]/config/device=eth8", "/top/routes/route[prefix=10.8.0.0/16][table=1]/config/tags=eth8"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("tree lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.9.0.0") || strings.Contains(got, "device=eth0") {
		t.Errorf("an earlier member's value was applied:\n%s", got)
	}
	// A tag may be long, a device name may not: the text shared from one
	// member is still checked against the other's type.
	long := `"a-very-long-interface-name"`
	if _, err := apply(t, tr, false, op{"update", r1 + "/config", jsonVal(`{"tags":` + long + `,"device":` + long + `}`)}); !errors.Is(err, ErrBadValue) {
		t.Fatalf("a 26-byte device name after the same text as a tag: %v, want %v", err, ErrBadValue)
	}
}
