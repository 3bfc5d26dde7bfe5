package tree

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// entryCase is a transaction written three ways: each write as Update or
// Delete of its own path, and all of them as one WriteEntry at at, with
// whole paths and with paths relative to at.
type entryCase struct {
	name   string
	state  bool
	at     string
	writes []op // "update" or "delete"
	want   error
	// operational, when set, is an entry a state writer created first.
	operational string
}

const entryBase = "/top/routes/route[prefix=10.0.0.1/32][table=254]"

// entrySeed is the tree both ways start from: one route with config, and
// state on it.
func entrySeed(t *testing.T) *Tree {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false, op{"update", entryBase + "/config", jsonVal(`{"prefix":"10.0.0.1/32","table":254,"device":"eth0","metric":5,"tags":"a"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, tr, true, op{"update", entryBase + "/state/reason", strVal("old")}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestWriteEntryIsItsLeafWrites(t *testing.T) {
	fresh := "/top/routes/route[prefix=10.0.0.2/32][table=7]"
	cases := []entryCase{
		{name: "new entry", at: fresh, writes: []op{
			{"update", fresh + "/config/prefix", strVal("10.0.0.2/32")},
			{"update", fresh + "/config/table", uintVal(7)},
			{"update", fresh + "/config/device", strVal("eth1")},
			{"update", fresh + "/config/extra", jsonVal(`["10.1.0.0/16","10.2.0.0/16"]`)},
		}},
		{name: "existing entry: change, delete, rewrite an equal value", at: entryBase, writes: []op{
			{"update", entryBase + "/config/metric", uintVal(6)},
			{"delete", entryBase + "/config/device", nil},
			{"update", entryBase + "/config/tags", strVal("a")},
			{"delete", entryBase + "/config/class", nil}, // unset: nothing to do
		}},
		{name: "nothing changes", at: entryBase, writes: []op{
			{"update", entryBase + "/config/metric", uintVal(5)},
			{"delete", entryBase + "/config/on", nil},
		}},
		{name: "deletes under an absent entry", at: fresh, writes: []op{
			{"delete", fresh + "/config/device", nil},
		}},
		{name: "delete then write of an absent entry", at: fresh, writes: []op{
			{"delete", fresh + "/config/device", nil},
			{"update", fresh + "/config/device", strVal("eth2")},
			{"delete", fresh + "/config/device", nil},
			{"update", fresh + "/config/metric", uintVal(1)},
		}},
		{name: "state of an existing entry", state: true, at: entryBase, writes: []op{
			{"update", entryBase + "/state/status", strVal("installed")},
			{"delete", entryBase + "/state/reason", nil},
		}},
		{name: "a container as the instance", at: "/top/posture", writes: []op{
			{"update", "/top/posture/config/level", uintVal(3)},
		}},
		{name: "a list below the instance takes the general path", at: "/top/devices", writes: []op{
			{"update", "/top/devices/device[name=sw1]/config/address", strVal("192.0.2.1")},
			{"update", "/top/devices/device[name=sw1]/config/name", strVal("sw1")},
			{"delete", "/top/devices/device[name=sw2]", nil},
		}},
		{name: "config on an entry that had only state", at: fresh, operational: fresh, writes: []op{
			{"update", fresh + "/config/device", strVal("eth3")},
		}},
		{name: "bad value", at: entryBase, want: ErrBadValue, writes: []op{
			{"update", entryBase + "/config/device", strVal("eth9")},
			{"update", entryBase + "/config/metric", uintVal(2000)},
		}},
		{name: "a key mirror differing from the key", at: fresh, want: ErrKeyLeaf, writes: []op{
			{"update", fresh + "/config/table", uintVal(8)},
		}},
		{name: "deleting a key leaf", at: entryBase, want: ErrKeyLeaf, writes: []op{
			{"delete", entryBase + "/prefix", nil},
		}},
		{name: "unknown leaf", at: entryBase, want: ErrUnknownPath, writes: []op{
			{"update", entryBase + "/config/colour", strVal("red")},
		}},
		{name: "no value", at: entryBase, want: ErrBadValue, writes: []op{
			{"update", entryBase + "/config/device", nil},
		}},
		{name: "state of an absent entry", state: true, at: fresh, want: ErrNotFound, writes: []op{
			{"update", fresh + "/state/status", strVal("installed")},
		}},
		{name: "config by a state writer", state: true, at: entryBase, want: ErrReadOnly, writes: []op{
			{"update", entryBase + "/config/metric", uintVal(1)},
		}},
		{name: "state by a config writer", at: entryBase, want: ErrReadOnly, writes: []op{
			{"update", entryBase + "/state/status", strVal("installed")},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			perLeaf, errLeaf := entryRun(t, c, "leaves")
			if !errors.Is(errLeaf, c.want) || (c.want == nil) != (errLeaf == nil) {
				t.Fatalf("leaf by leaf: err %v, want %v", errLeaf, c.want)
			}
			var errWhole error
			for _, how := range []string{"whole", "relative", "keyed"} {
				if how == "keyed" && len(p(t, c.at)[len(p(t, c.at))-1].GetKey()) == 0 {
					continue // a container: no key to name it by
				}
				entry, errEntry := entryRun(t, c, how)
				if !errors.Is(errEntry, c.want) || (c.want == nil) != (errEntry == nil) {
					t.Fatalf("WriteEntry, %s paths: err %v, want %v", how, errEntry, c.want)
				}
				if diff := cmp.Diff(perLeaf, entry); diff != "" {
					t.Fatalf("WriteEntry's changes with %s paths differ from its leaf writes' (-leaf +entry):\n%s", how, diff)
				}
				// A relative path, or a keyed entry, is reported as its
				// whole path.
				if how == "whole" {
					errWhole = errEntry
				} else if fmt.Sprint(errEntry) != fmt.Sprint(errWhole) {
					t.Fatalf("WriteEntry's error with relative paths %q, with whole paths %q", errEntry, errWhole)
				}
			}
		})
	}
}

// entryRun writes c on a fresh seed, leaf by leaf (how "leaves") or with
// WriteEntry, its leaves' paths "whole" or "relative" to c.at, or with
// WriteKeyedEntry ("keyed", the entry named by its typed keys), and
// returns the changes (in order) and the error; after an error the tree
// must be as it was.
func entryRun(t *testing.T, c entryCase, how string) ([]string, error) {
	tr := entrySeed(t)
	if c.operational != "" {
		tx, err := tr.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		tx.OperationalEntries = true
		if err := tx.Update(p(t, c.operational+"/state/status"), strVal("installed")); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	before := tr.Snapshot()
	tx, err := tr.Begin(c.state)
	if err != nil {
		t.Fatal(err)
	}
	if how != "leaves" {
		at := p(t, c.at)
		ws := make([]EntryWrite, len(c.writes))
		for i, w := range c.writes {
			ws[i] = EntryWrite{Path: p(t, w.path), Val: w.val, Delete: w.kind == "delete"}
			if how != "whole" {
				ws[i].Path, ws[i].Relative = ws[i].Path[len(at):], true
			}
		}
		if how == "keyed" {
			err = tx.WriteKeyedEntry(keyOf(t, tr.schema, at), ws)
		} else {
			err = tx.WriteEntry(at, ws)
		}
	} else {
		for _, w := range c.writes {
			if w.kind == "delete" {
				err = tx.Delete(p(t, w.path))
			} else {
				err = tx.Update(p(t, w.path), w.val)
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil {
		err = tx.Validate()
	}
	if err != nil {
		tx.Rollback()
		if tr.Root() != before.Root() {
			t.Fatal("a refused transaction left the tree changed")
		}
		return nil, err
	}
	var out []string
	for _, ch := range tx.Changes() {
		s := "set "
		if ch.Op == OpDelete {
			s = "del "
		}
		out = append(out, s+ch.Path()+"="+ch.Val.String()+" was "+ch.Old.String())
	}
	tx.Commit()
	return out, nil
}

func TestWriteEntryRefusesLeavesElsewhere(t *testing.T) {
	tr := entrySeed(t)
	before := tr.Snapshot()
	other := "/top/routes/route[prefix=10.0.0.3/32][table=254]"
	for _, at := range []string{entryBase, entryBase + "/config/metric"} {
		tx, err := tr.Begin(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []EntryWrite{
			{Path: p(t, other+"/config/metric"), Val: uintVal(9)},
			{Relative: true, Val: uintVal(9)}, // the instance itself
			{Path: p(t, at), Val: uintVal(9)},
		} {
			err = tx.WriteEntry(p(t, at), []EntryWrite{
				{Path: p(t, entryBase+"/config/metric"), Val: uintVal(9)},
				{Path: p(t, "/config/metric"), Relative: true, Val: uintVal(9)},
				bad,
			})
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("write %v below %s: err %v, want %v", bad, at, err, ErrBadPath)
			}
			if !tx.Empty() {
				t.Fatalf("write %v below %s: the refused transaction changed %v", bad, at, tx.Changes())
			}
		}
		tx.Rollback()
	}
	if tr.Root() != before.Root() {
		t.Fatal("refused writes left the tree changed")
	}
}

func TestWriteEntryOfEqualValuesCopiesNothing(t *testing.T) {
	tr := entrySeed(t)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	base := tr.Root()
	err = tx.WriteEntry(p(t, entryBase), []EntryWrite{
		{Path: p(t, entryBase+"/config/metric"), Val: uintVal(5)},
		{Path: p(t, entryBase+"/config/device"), Val: strVal("eth0")},
		{Path: p(t, entryBase+"/config/on"), Delete: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Root() != base {
		t.Fatal("rewriting equal values copied the root")
	}
	tx.Rollback()
}

func TestAppendElementIsElement(t *testing.T) {
	tr := New(testSchema(t))
	dev := `/top/devices/device[name=a\]b\\c]`
	if _, err := apply(t, tr, false,
		op{"update", dev + "/config/address", strVal("192.0.2.1")},
		op{"update", dev + "/config/name", strVal(`a]b\c`)},
		op{"update", entryBase + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := Match{In: tr.Root()}.Leaves(nil, func(in *Inst, _ *Node, _ Value) error {
		for x := in.Ident(); !x.IsZero(); x = x.Parent() {
			n++
			if got, want := string(x.AppendElement([]byte("pre"))), "pre"+x.Element(); got != want {
				t.Errorf("AppendElement %q, want %q", got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no instances compared")
	}
}
