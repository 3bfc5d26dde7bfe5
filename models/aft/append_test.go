package aft

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAppendApplyHoldsTheOpsEntry: AppendApply appends to the results
// given, the RIB holds an added entry as its op's Entry (no copy), and
// the entries a Reserve moved into a bigger map are all still there.
func TestAppendApplyHoldsTheOpsEntry(t *testing.T) {
	r := New()
	g := nhg(2, 7, 1)
	out := r.AppendApply(nil, new(nh(1)))
	out = r.AppendApply(out, &g)
	if d := cmp.Diff([]string{"1:ok", "2:ok"}, outcome(out)); d != "" {
		t.Fatalf("results (-want +got):\n%s", d)
	}
	if e, _ := r.Get(g.Entry.Key()); e != &g.Entry {
		t.Errorf("the RIB holds a copy of group 7's entry, not its op's")
	}
	var ops []*Op
	for i := range 3000 {
		op := v4(uint64(10+i), fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), 7)
		ops = append(ops, &op)
		if i == 1000 {
			r.Reserve(4000)
		}
		if rs := r.Apply(&op); len(rs) != 1 || !rs[0].OK {
			t.Fatalf("op %d: %v", op.ID, outcome(rs))
		}
	}
	for _, op := range ops {
		if e, ok := r.Get(op.Entry.Key()); !ok || e != &op.Entry {
			t.Fatalf("after Reserve, %s is missing or not its op's entry", op.Entry.Key())
		}
	}
	if r.Len() != 3002 {
		t.Errorf("RIB holds %d entries, want 3002", r.Len())
	}
}
