package tree

import (
	"fmt"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// TestPathMemoIsChangePath: the memo renders every changed leaf's path as
// Change.Path does (leaves of a container below the root, list entries
// with two keys and with keys that need escaping), for instances met
// again after others and after the memo started again past its bound.
func TestPathMemoIsChangePath(t *testing.T) {
	tr := New(testSchema(t))
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	device := func(name, leaf string) []*gpb.PathElem {
		return []*gpb.PathElem{{Name: "top"}, {Name: "devices"},
			{Name: "device", Key: map[string]string{"name": name}}, {Name: "config"}, {Name: leaf}}
	}
	names := []string{`d]1\x`, "d=2", `d[3]`}
	for i := range maxMemoPaths + 100 {
		names = append(names, fmt.Sprintf("dev%d", i))
	}
	for _, n := range names {
		for _, u := range []struct{ leaf, val string }{{"name", n}, {"address", "10.0.0.1"}} {
			if err := tx.Update(device(n, u.leaf), strVal(u.val)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Update(p(t, "/top/routes/route[prefix=10.0.0.0/24][table=254]/config"),
		jsonVal(`{"prefix":"10.0.0.0/24","table":254,"device":"eth0"}`)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Update(p(t, "/top/posture/config/level"), uintVal(3)); err != nil {
		t.Fatal(err)
	}
	changes := tx.Changes()
	tx.Rollback()
	if want := 2*len(names) + 4; len(changes) < want {
		t.Fatalf("%d changes, want at least %d", len(changes), want)
	}
	var m, am PathMemo
	var buf []byte
	check := func(ch Change) {
		t.Helper()
		if got, want := m.Leaf(ch.In, ch.Node), ch.Path(); got != want {
			t.Fatalf("path %q, want %q", got, want)
		}
		// AppendInst, from its own memo, after whatever instance it
		// rendered last (a parent, a sibling, the same).
		buf = am.AppendInst(append(buf[:0], "x"...), ch.In)
		if got, want := string(buf[1:]), ch.In.PathString(); got != want {
			t.Fatalf("AppendInst %q, want %q", got, want)
		}
	}
	for _, ch := range changes {
		check(ch)
	}
	// Backwards: every instance met again, most after the memo started
	// again.
	for i := len(changes) - 1; i >= 0; i-- {
		check(changes[i])
	}
	if got := m.Inst(tr.Root().Ident()); got != "/" {
		t.Fatalf("root path %q, want /", got)
	}
	if got := string(am.AppendInst(nil, tr.Root().Ident())); got != "/" {
		t.Fatalf("AppendInst root path %q, want /", got)
	}
}
