package tree

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// runStep is one write of a run: a keyed entry write (key and writes
// relative to the entry) or, with del, the deletion of the entry.
type runStep struct {
	key *EntryKey
	ws  []EntryWrite
	del bool
	// before, when set, runs before the step in both forms (a writer
	// changing an element it reuses).
	before func()
}

// TestWriteKeyedEntryRunsAreTheirLeafWrites: many keyed writes in one
// transaction, into one list and into another in turn, with deletes of
// entries written before, refused writes, repeated and changing values,
// and elements a writer shares from entry to entry or reuses with
// another name in place, have the changes and errors of the same writes
// made leaf by leaf at their paths; the state writer's run likewise. The
// transaction memoises its schema resolutions and decoded texts (the
// list, the leaves, a repeated text), which this holds to the
// unmemoised form.
func TestWriteKeyedEntryRunsAreTheirLeafWrites(t *testing.T) {
	routes, devices := p(t, "/top/routes"), p(t, "/top/devices")
	routeNames, deviceNames := []string{"prefix", "table"}, []string{"name"}
	metric, device, class, tags := p(t, "/config/metric"), p(t, "/config/device"), p(t, "/config/class"), p(t, "/config/tags")
	address := p(t, "/config/address")
	status, reason := p(t, "/state/status"), p(t, "/state/reason")
	// reused is an element a writer renames in place between entries.
	reused := &gpb.PathElem{Name: "metric"}
	reusedPath := []*gpb.PathElem{{Name: "config"}, reused}
	// parentBuf is a parent slice a writer refills in place.
	parentBuf := make([]*gpb.PathElem, 2)
	ownParent := []*gpb.PathElem{{Name: "top"}, {Name: "routes"}}

	route := func(prefix string) *EntryKey {
		return &EntryKey{routes, "route", routeNames, []Value{String(prefix), Uint(254)}}
	}
	var cfg []runStep
	for i := range 60 {
		prefix := fmt.Sprintf("10.1.%d.0/24", i)
		dev := []string{"eth0", "eth0", "eth1"}[i%3]
		st := runStep{key: route(prefix), ws: []EntryWrite{
			{Path: metric, Relative: true, Val: uintVal(uint64(i))},
			{Path: device, Relative: true, Val: strVal(dev)},
			{Path: class, Relative: true, Val: strVal("overlay")},
		}}
		switch {
		case i == 17:
			// A refusal in the middle of a run: the device too long.
			st.ws[1].Val = strVal("eth-far-too-long-a-name")
		case i == 23:
			// Out of range, at an entry written before (a refused leaf
			// write at a new entry's path creates the entry, a refused
			// entry write does not).
			st.key, st.ws[0].Val = route("10.1.3.0/24"), uintVal(2000)
		case i == 31:
			// The same element, renamed: tags, not metric.
			st.before = func() { reused.Name = "tags" }
			st.ws = append(st.ws, EntryWrite{Path: reusedPath, Relative: true, Val: strVal("x")})
		case i == 32:
			st.before = func() { reused.Name = "metric" }
			st.ws = append(st.ws, EntryWrite{Path: reusedPath, Relative: true, Val: uintVal(7)})
		case i == 40:
			// A parent slice the writer refills: another list's parent,
			// then this one's again.
			st.before = func() { copy(parentBuf, devices) }
			st.key = &EntryKey{parentBuf, "device", deviceNames, []Value{String("sw-buf")}}
			st.ws = []EntryWrite{{Path: address, Relative: true, Val: strVal("192.0.2.2")}}
		case i == 41:
			st.before = func() { copy(parentBuf, routes) }
			st.key = &EntryKey{parentBuf, "route", routeNames, []Value{String(prefix), Uint(254)}}
		case i >= 48 && i <= 52:
			// A parent element the writer renames in place, and back.
			st.key.Parent = ownParent
			if i == 50 {
				st.before = func() { ownParent[1].Name = "routez" }
			}
			if i == 51 {
				st.before = func() { ownParent[1].Name = "routes" }
			}
		case i%9 == 4:
			st.ws = append(st.ws, EntryWrite{Path: tags, Relative: true, Delete: true})
		}
		cfg = append(cfg, st)
		if i%7 == 3 {
			name := fmt.Sprintf("sw%d", i)
			cfg = append(cfg, runStep{key: &EntryKey{devices, "device", deviceNames, []Value{String(name)}}, ws: []EntryWrite{
				{Path: address, Relative: true, Val: strVal("192.0.2.1")},
			}})
		}
		if i%5 == 4 {
			cfg = append(cfg, runStep{key: route(fmt.Sprintf("10.1.%d.0/24", i-2)), del: true})
			// Written again after its deletion.
			cfg = append(cfg, runStep{key: route(fmt.Sprintf("10.1.%d.0/24", i-2)), ws: []EntryWrite{{Path: device, Relative: true, Val: strVal("eth2")}}})
		}
	}
	var state []runStep
	for i := range 60 {
		if i == 17 || i == 23 || i == 40 {
			continue
		}
		v := "installed"
		if i%11 == 5 {
			v = "withheld"
		}
		state = append(state, runStep{key: route(fmt.Sprintf("10.1.%d.0/24", i)), ws: []EntryWrite{
			{Path: status, Relative: true, Val: strVal(v)},
			{Path: reason, Relative: true, Val: strVal("ok")},
		}})
	}
	state = append(state, runStep{key: route("10.9.9.0/24"), ws: []EntryWrite{{Path: status, Relative: true, Val: strVal("installed")}}})

	leafTree, keyedTree := entrySeed(t), entrySeed(t)
	for _, phase := range []struct {
		state bool
		steps []runStep
	}{{false, cfg}, {true, state}} {
		byLeaf := runSteps(t, leafTree, phase.state, phase.steps, false)
		keyed := runSteps(t, keyedTree, phase.state, phase.steps, true)
		if diff := cmp.Diff(byLeaf, keyed); diff != "" {
			t.Fatalf("state %v: keyed run differs from its leaf writes (-leaf +keyed):\n%s", phase.state, diff)
		}
	}
}

// runSteps writes steps in one transaction of tr, each keyed or leaf by
// leaf at its whole path, and returns each step's error and the
// transaction's changes; it commits them.
func runSteps(t *testing.T, tr *Tree, state bool, steps []runStep, keyed bool) []string {
	tx, err := tr.Begin(state)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		at := s.key.Elems()
		switch {
		case s.del:
			err = tx.Delete(at)
		case keyed:
			err = tx.WriteKeyedEntry(s.key, s.ws)
		default:
			for _, w := range s.ws {
				path := append(append([]*gpb.PathElem(nil), at...), w.Path...)
				if w.Delete {
					err = tx.Delete(path)
				} else {
					err = tx.Update(path, w.Val)
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			out = append(out, fmt.Sprintf("step %d: %v", i, err))
		}
	}
	if err := tx.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	for _, ch := range tx.Changes() {
		out = append(out, fmt.Sprintf("%d %s=%s was %s", ch.Op, ch.Path(), ch.Val, ch.Old))
	}
	tx.Commit()
	return out
}

// TestWriteKeyedEntryNewKeyHashedTwice: a keyed write creating an entry
// of a list with one string key looks the key up once and inserts it
// once (two hashes of it); the key as given was looked up a second time
// after its check, the same string again. An existing entry is found by
// one lookup and copied by one more.
func TestWriteKeyedEntryNewKeyHashedTwice(t *testing.T) {
	tr := entrySeed(t)
	if _, err := apply(t, tr, false, op{"update", "/top/devices/device[name=sw1]/config/address", strVal("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	hashed := map[string]int{}
	orig := keyHash
	keyHash = func(k string) uint64 { hashed[k]++; return orig(k) }
	defer func() { keyHash = orig }()
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	k := &EntryKey{p(t, "/top/devices"), "device", []string{"name"}, []Value{String("sw7")}}
	ws := []EntryWrite{{Path: p(t, "/config/address"), Relative: true, Val: strVal("192.0.2.7")}}
	if err := tx.WriteKeyedEntry(k, ws); err != nil {
		t.Fatal(err)
	}
	if hashed["sw7"] != 2 {
		t.Fatalf("a new entry's key hashed %d times, want 2 (a lookup, an insertion)", hashed["sw7"])
	}
	ws[0].Val = strVal("192.0.2.8")
	if err := tx.WriteKeyedEntry(k, ws); err != nil {
		t.Fatal(err)
	}
	if hashed["sw7"] != 4 {
		t.Fatalf("an existing entry's key hashed %d times in all, want 4", hashed["sw7"])
	}
	tx.Rollback()
}
