package tree

import (
	"sort"
	"strings"
	"testing"
	"unsafe"
)

// lookup returns the instance holding the leaf at path and the leaf's
// schema node.
func lookup(t *testing.T, tr *Tree, path string) (*Inst, *Node) {
	t.Helper()
	tgt, _, err := tr.Lookup(p(t, path))
	if err != nil || tgt.In == nil || tgt.Node == nil {
		t.Fatalf("lookup %s: %v", path, err)
	}
	return tgt.In, tgt.Node
}

// TestValsHoldLeavesSet checks that an instance keeps value slots only up
// to its last leaf set, with operational leaves and key mirrors first, so
// a route's state container written only a status holds its operational
// leaves' slots instead of one for every config leaf it mirrors; and that
// growing them later keeps every value and the entry's keys.
func TestValsHoldLeavesSet(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, tr, true, op{"update", r1 + "/state/status", strVal("installed")}); err != nil {
		t.Fatal(err)
	}
	st, status := lookup(t, tr, r1+"/state/status")
	if want := 2; len(st.vals) > want || st.s.nvals <= want {
		t.Fatalf("state holds %d of %d value slots, want at most %d (reason and status)", len(st.vals), st.s.nvals, want)
	}
	if status.slot >= 2 {
		t.Fatalf("status has slot %d, want one of the two operational slots first", status.slot)
	}
	cfg, device := lookup(t, tr, r1+"/config/device")
	if len(cfg.vals) != device.slot+1 || len(cfg.vals) >= cfg.s.nvals {
		t.Fatalf("config holds %d of %d value slots, want %d (to device)", len(cfg.vals), cfg.s.nvals, device.slot+1)
	}
	for _, k := range []string{"prefix", "table"} {
		if n := cfg.s.Child(k); n.slot >= 2 {
			t.Fatalf("config %s (a key mirror) has slot %d, want one of the first two", k, n.slot)
		}
	}

	// Leaves past the end read as unset, and writing them grows the
	// vals without losing what was there.
	if v := st.Get("device"); v.IsSet() {
		t.Fatalf("state device reads %v, want unset", v)
	}
	before := dump(tr)
	if _, err := apply(t, tr, false,
		op{"update", r1 + "/config/tags", strVal("blue")},
		op{"update", r1 + "/config/metric", uintVal(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, tr, true, op{"update", r1 + "/state/tags", strVal("mirrored")}); err != nil {
		t.Fatal(err)
	}
	want := before + "\n" + r1 + "/config/metric=7\n" + r1 + "/config/tags=blue\n" + r1 + "/state/tags=mirrored"
	if got := dump(tr); got != sortLines(want) {
		t.Fatalf("after growing:\n%s\nwant:\n%s", got, sortLines(want))
	}
	e, _ := lookup(t, tr, r1+"/prefix")
	if keys := e.Ident().Keys(); keys[0].String() != "10.0.0.0/24" || keys[1].String() != "254" {
		t.Fatalf("entry keys %v after its leaves grew", keys)
	}
	// Unsetting a leaf past the end writes nothing.
	ch, err := apply(t, tr, true, op{"delete", r1 + "/state/reason", nil})
	if err != nil || len(ch) != 0 {
		t.Fatalf("deleting an unset leaf: changes %v err %v", render(ch), err)
	}
}

func sortLines(s string) string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestInstSize checks an instance fits the 64-byte size class: a route
// entry is three instances, kept for every route of the table.
func TestInstSize(t *testing.T) {
	if n := unsafe.Sizeof(Inst{}); n > 64 {
		t.Fatalf("an Inst is %d bytes, want at most 64", n)
	}
}

// TestEntryCopySharesKeys: a copy of a list entry whose leaves are its
// keys alone (a gRIBI entry written a status: the entry is copied for its
// new state container) shares the key array with its identity rather
// than copying it; a key slot written with another value (as a replayed
// log may) gets an array of its own, leaving the identity's keys and the
// version before as they were.
func TestEntryCopySharesKeys(t *testing.T) {
	tr := New(testSchema(t))
	dev := "/top/devices/device[name=sw1]"
	if _, err := apply(t, tr, false, op{"update", dev + "/config/address", strVal("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	before, _ := lookup(t, tr, dev+"/name")
	if !keysOnly(before) {
		t.Fatalf("a new entry's leaf array is not its ident's")
	}
	if _, err := apply(t, tr, true, op{"update", dev + "/state/address", strVal("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	after, name := lookup(t, tr, dev+"/name")
	if after == before {
		t.Fatal("the state write did not copy the entry")
	}
	if !keysOnly(after) || &after.vals[0] != &before.vals[0] {
		t.Fatal("the entry's copy has a key array of its own, want its ident's")
	}

	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	c := tx.follow([]step{{n: tr.schema.Root.Child("top")}, {n: tr.schema.Root.Child("top").Child("devices")}, {n: after.s, key: "sw1"}})
	if c == after || c.id != after.id {
		t.Fatalf("follow did not copy the entry")
	}
	tx.setVal(c, name, String("sw2"))
	if got := after.Ident().Keys()[0].String(); got != "sw1" || after.Leaf(name).String() != "sw1" || c.Leaf(name).String() != "sw2" {
		t.Fatalf("a key slot written in a copy: ident key %s, committed %s, copy %s; want sw1, sw1, sw2", got, after.Leaf(name), c.Leaf(name))
	}
	tx.Rollback()
}
