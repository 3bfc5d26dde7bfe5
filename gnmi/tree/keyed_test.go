package tree

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// keyOf is the EntryKey of the list entry at (a path whose last element
// is the entry, below containers), its keys typed as the schema's leaves.
func keyOf(t *testing.T, s *Schema, at []*gpb.PathElem) *EntryKey {
	t.Helper()
	n := entryNode(s.Root, at)
	if n == nil || n.Kind != KindList {
		t.Fatalf("%s is not a list entry", renderElems(at))
	}
	e := at[len(at)-1]
	k := &EntryKey{Parent: at[:len(at)-1], List: e.GetName()}
	for _, kn := range n.Keys {
		v, err := kn.Type.ParseText(e.GetKey()[kn.Name])
		if err != nil {
			t.Fatal(err)
		}
		k.Names, k.Keys = append(k.Names, kn.Name), append(k.Keys, v)
	}
	return k
}

// TestWriteKeyedEntryRefusals: a keyed write the tree refuses changes
// nothing and fails as the same write at the entry's path does, or, for a
// key value its path could not carry (a key of the wrong type, no value),
// as ErrBadValue naming the key.
func TestWriteKeyedEntryRefusals(t *testing.T) {
	routes := p(t, "/top/routes")
	metric := []EntryWrite{{Path: p(t, "/config/metric"), Relative: true, Val: uintVal(9)}}
	cases := []struct {
		name string
		key  EntryKey
		want error
		// samePath: the error is the path form's, word for word.
		samePath bool
	}{
		{"a prefix that is not one", EntryKey{routes, "route", []string{"prefix", "table"}, []Value{String("10.0.0.9"), Uint(254)}}, ErrBadValue, true},
		{"a table out of range", EntryKey{routes, "route", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), Uint(1 << 40)}}, ErrBadValue, false},
		{"a table given as text that is no number", EntryKey{routes, "route", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), String("main")}}, ErrBadValue, true},
		{"a prefix given as a number", EntryKey{routes, "route", []string{"prefix", "table"}, []Value{Uint(10), Uint(254)}}, ErrBadValue, false},
		{"a key without a value", EntryKey{routes, "route", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), {}}}, ErrBadValue, false},
		{"a missing list", EntryKey{routes, "rout", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), Uint(254)}}, ErrUnknownPath, true},
		{"a missing key", EntryKey{routes, "route", []string{"prefix"}, []Value{String("10.0.0.9/32")}}, ErrBadPath, true},
		{"another key's name", EntryKey{routes, "route", []string{"prefix", "metric"}, []Value{String("10.0.0.9/32"), Uint(254)}}, ErrBadPath, true},
		{"a parent that is a leaf", EntryKey{p(t, "/top/posture/config/level"), "route", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), Uint(254)}}, ErrUnknownPath, true},
		{"a list that is a container", EntryKey{p(t, "/top"), "routes", []string{"prefix", "table"}, []Value{String("10.0.0.9/32"), Uint(254)}}, ErrBadPath, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := entrySeed(t)
			before := tr.Snapshot()
			tx, err := tr.Begin(false)
			if err != nil {
				t.Fatal(err)
			}
			err = tx.WriteKeyedEntry(&c.key, metric)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if !tx.Empty() {
				t.Fatalf("the refused write changed %v", tx.Changes())
			}
			tx.Rollback()
			if tr.Root() != before.Root() {
				t.Fatal("the refused write left the tree changed")
			}
			if c.samePath {
				tx, _ := tr.Begin(false)
				pathErr := tx.WriteEntry(c.key.Elems(), metric)
				tx.Rollback()
				if fmt.Sprint(err) != fmt.Sprint(pathErr) {
					t.Fatalf("keyed: %v; at the entry's path: %v", err, pathErr)
				}
			}
		})
	}
}

// TestWriteKeyedEntryCreatesContainers: the first entry of a list whose
// containers are absent is created, as at its path, and the next is found
// by its key.
func TestWriteKeyedEntryCreatesContainers(t *testing.T) {
	tr := New(testSchema(t))
	for i, prefix := range []string{"10.0.0.1/32", "10.0.0.2/32", "10.0.0.1/32"} {
		tx, err := tr.Begin(false)
		if err != nil {
			t.Fatal(err)
		}
		k := &EntryKey{p(t, "/top/routes"), "route", []string{"prefix", "table"}, []Value{String(prefix), Uint(7)}}
		if err := tx.WriteKeyedEntry(k, []EntryWrite{{Path: p(t, "/config/metric"), Relative: true, Val: uintVal(uint64(i))}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Validate(); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	var got []string
	for _, prefix := range []string{"10.0.0.1/32", "10.0.0.2/32"} {
		in, ok, err := tr.Lookup(p(t, "/top/routes/route[prefix="+prefix+"][table=7]/config/metric"))
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", prefix, ok, err)
		}
		got = append(got, in.In.Get("metric").String())
	}
	if fmt.Sprint(got) != "[2 1]" {
		t.Fatalf("metrics %v, want [2 1]", got)
	}
}

// TestWriteKeyedEntryListsInTurn: entries of two lists and a key naming
// its list's keys wrongly, in turn in one transaction, each written or
// refused as alone, a refusal leaving the writes before it in place; an
// entry written again is found by its key as given.
func TestWriteKeyedEntryListsInTurn(t *testing.T) {
	tr := entrySeed(t)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	routes, devices := p(t, "/top/routes"), p(t, "/top/devices")
	names := []string{"prefix", "table"}
	metric := []EntryWrite{{Path: p(t, "/config/metric"), Relative: true, Val: uintVal(3)}}
	address := []EntryWrite{{Path: p(t, "/config/address"), Relative: true, Val: strVal("192.0.2.9")}}
	address2 := []EntryWrite{{Path: p(t, "/config/address"), Relative: true, Val: strVal("192.0.2.10")}}
	steps := []struct {
		k    EntryKey
		ws   []EntryWrite
		want error
	}{
		{EntryKey{routes, "route", names, []Value{String("10.0.0.5/32"), Uint(254)}}, metric, nil},
		{EntryKey{routes, "route", []string{"prefix", "metric"}, []Value{String("10.0.0.6/32"), Uint(254)}}, metric, ErrBadPath},
		{EntryKey{devices, "device", []string{"name"}, []Value{String("sw9")}}, address, nil},
		{EntryKey{routes, "route", names, []Value{String("10.0.0.6/32"), Uint(254)}}, metric, nil},
		// The device again: found by its key as given.
		{EntryKey{devices, "device", []string{"name"}, []Value{String("sw9")}}, address2, nil},
		{EntryKey{devices, "device", []string{"name"}, []Value{String("sw9")}}, metric, ErrUnknownPath},
	}
	for i, s := range steps {
		if err := tx.WriteKeyedEntry(&s.k, s.ws); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("step %d: err %v, want %v", i, err, s.want)
		}
	}
	var got []string
	for _, ch := range tx.Changes() {
		got = append(got, ch.Path())
	}
	want := []string{
		"/top/devices/device[name=sw9]/config/address", "/top/devices/device[name=sw9]/config/name", "/top/devices/device[name=sw9]/name",
		"/top/routes/route[prefix=10.0.0.5/32][table=254]/config/metric", "/top/routes/route[prefix=10.0.0.5/32][table=254]/config/prefix",
		"/top/routes/route[prefix=10.0.0.5/32][table=254]/config/table", "/top/routes/route[prefix=10.0.0.5/32][table=254]/prefix",
		"/top/routes/route[prefix=10.0.0.5/32][table=254]/table",
		"/top/routes/route[prefix=10.0.0.6/32][table=254]/config/metric", "/top/routes/route[prefix=10.0.0.6/32][table=254]/config/prefix",
		"/top/routes/route[prefix=10.0.0.6/32][table=254]/config/table", "/top/routes/route[prefix=10.0.0.6/32][table=254]/prefix",
		"/top/routes/route[prefix=10.0.0.6/32][table=254]/table",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("changes\n%v\nwant\n%v", got, want)
	}
	if tgt, ok, err := tx.t.Lookup(p(t, "/top/devices/device[name=sw9]/config/address")); !ok || err != nil || tgt.In.Leaf(tgt.Node).Str() != "192.0.2.10" {
		t.Fatalf("sw9's address after the second write: %v %v", ok, err)
	}
	tx.Rollback()
}
