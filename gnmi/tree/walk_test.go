package tree

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// deep builds a path of n "..." then the given elements.
func deep(n int, rest ...string) []*gpb.PathElem {
	var elems []*gpb.PathElem
	for range n {
		elems = append(elems, &gpb.PathElem{Name: "..."})
	}
	for _, r := range rest {
		elems = append(elems, &gpb.PathElem{Name: r})
	}
	return elems
}

func walkPaths(t *testing.T, tr *Tree, elems []*gpb.PathElem) ([]string, error) {
	t.Helper()
	var got []string
	err := tr.Walk(elems, func(m Match) error {
		got = append(got, m.Path())
		return nil
	})
	return got, err
}

// Repeated "..." used to multiply the walk: each one tried every depth
// for every split the ones before it had made, so 70 of them held a read
// for tens of seconds, and the same leaf came back once per split. A
// pattern is now an automaton over the tree: one visit per instance,
// each node selected once.
func TestWalkRepeatedDeepIsLinearAndUnique(t *testing.T) {
	tr := New(testSchema(t))
	var ops []op
	for i := range 200 {
		ops = append(ops, op{"update", fmt.Sprintf("/top/routes/route[prefix=10.0.%d.0/24][table=1]/config/device", i), strVal("eth0")})
		ops = append(ops, op{"update", fmt.Sprintf("/top/devices/device[name=d%d]/config/address", i), strVal("x")})
	}
	if _, err := apply(t, tr, false, ops...); err != nil {
		t.Fatal(err)
	}
	instances := 0
	_ = eachInst(tr.Root(), func(*Inst) error { instances++; return nil })
	one, err := walkPaths(t, tr, deep(1, "address"))
	if err != nil || len(one) != 200 {
		t.Fatalf("/.../address: %d matches, err %v", len(one), err)
	}
	for _, n := range []int{2, 9, 70, 5000} {
		visits := 0
		var got []string
		err := tr.WalkWith(deep(n, "address"), WalkOpts{Visit: func(v int) error { visits = v; return nil }}, func(m Match) error {
			got = append(got, m.Path())
			return nil
		})
		if err != nil {
			t.Fatalf("%d × ...: %v", n, err)
		}
		if d := cmp.Diff(one, got); d != "" {
			t.Fatalf("%d × ... selects differently from one (-one +got):\n%s", n, d)
		}
		// Visit reports every 256th visit: one visit per instance keeps
		// the count at or below the number of instances.
		if visits == 0 || visits > instances {
			t.Fatalf("%d × ...: %d instance visits for %d instances", n, visits, instances)
		}
	}
	// An invalid name after many "..." is refused without trying every
	// way of placing them.
	if _, err := walkPaths(t, tr, deep(70, "nope")); !errors.Is(err, ErrUnknownPath) {
		t.Fatalf("70 × .../nope: %v", err)
	}
	if _, err := walkPaths(t, tr, deep(3, "routes", "...", "config", "...", "nope")); !errors.Is(err, ErrUnknownPath) {
		t.Fatalf(".../routes/.../config/.../nope: %v", err)
	}
}

// A match is never nested in another: /.../config selects each route's
// config container once, and a pattern that could select both an
// instance and something inside it selects the instance only.
func TestWalkMatchesDoNotOverlap(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false,
		op{"update", r1 + "/config/device", strVal("eth0")},
		op{"update", "/top/posture/config/level", uintVal(2)},
	); err != nil {
		t.Fatal(err)
	}
	got, err := walkPaths(t, tr, p(t, "/top/.../config"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/top/posture/config", r1 + "/config"}
	if d := cmp.Diff(want, sorted(got)); d != "" {
		t.Fatal(d)
	}
	// "..." alone selects the start only; "/top/..." the top container.
	for path, want := range map[string][]string{"/...": {"/"}, "/top/...": {"/top"}, "/*/routes/.../*": {r1}} {
		got, err := walkPaths(t, tr, p(t, path))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%s (-want +got):\n%s", path, d)
		}
	}
	// Every leaf below /top/.../* comes once.
	seen := map[string]bool{}
	err = tr.Walk(p(t, "/top/.../*"), func(m Match) error {
		return m.Leaves(nil, func(in *Inst, n *Node, _ Value) error {
			k := Match{In: in, Node: n}.Path()
			if seen[k] {
				return fmt.Errorf("%s twice", k)
			}
			seen[k] = true
			return nil
		})
	})
	if err != nil || len(seen) != 6 {
		t.Fatalf("/top/.../*: %d leaves, err %v", len(seen), err)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestPatternLimitAndErrors(t *testing.T) {
	s := testSchema(t)
	long := strings.Repeat("/top", MaxPathElems+1)
	err := CheckPath(s, p(t, long))
	if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), fmt.Sprint(MaxPathElems)) {
		t.Fatalf("a %d-element path: %v", MaxPathElems+1, err)
	}
	for path, want := range map[string]error{
		"/top/routes/route[prefix=10.0.0.0/24][table=x]": ErrBadValue,
		"/top/routes/route[nope=1]":                      ErrBadPath,
		"/top/posture[k=1]":                              ErrBadPath,
		"/top/posture/config/level/x":                    ErrUnknownPath,
		"/top/.../route[prefix=*]/config/nope":           ErrUnknownPath,
		"/kedge-test:top/routes":                         nil,
		"/top/*/route[prefix=*]":                         nil,
		"/.../state[id=*]":                               ErrBadPath,
		"/.../session[id=*]/state":                       nil,
	} {
		if err := CheckPath(s, p(t, path)); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", path, err, want)
		}
	}
}

func TestPatternPrefixes(t *testing.T) {
	s := testSchema(t)
	path := p(t, r1+"/config/device")
	for pat, want := range map[string]bool{
		"/top":                              true,
		"/top/routes/route[prefix=*]":       true,
		"/top/routes/route[table=254]":      true,
		"/top/routes/route[table=1]":        false,
		"/.../config":                       true,
		"/.../config/device":                true,
		"/.../config/metric":                false,
		"/kedge-test:top/*/route/*/device":  true,
		"/top/.../device/...":               true,
		"/top/posture":                      false,
		"/...":                              true,
		"/top/routes/route/config/device/x": false,
	} {
		var elems []*gpb.PathElem
		if pat != "/top/routes/route/config/device/x" {
			c, err := CompilePattern(s, p(t, pat))
			if err != nil {
				t.Fatalf("%s: %v", pat, err)
			}
			elems = c.Elems()
		} else {
			elems = p(t, pat)
		}
		c, err := compile(elems)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Prefixes(path); got != want {
			t.Errorf("%s selects %s: %v, want %v", pat, r1+"/config/device", got, want)
		}
	}
	// Many "..." between names cost one pass over the path.
	c, err := compile(p(t, strings.Repeat("/.../config", 15)+"/nope"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefixes(path) {
		t.Fatal("a pattern ending in nope selected a device leaf")
	}
}
