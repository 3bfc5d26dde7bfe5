package intent

import (
	"testing"

	"github.com/guildhouse-co/kedge/models/accord"
)

// TestEntryAfterIsTheEntrysOwn: Observe's walk of the order beside a
// state commit finds an entry's cache entry at the cursor only when it
// is that id's live one; a replaced entry left in the order until the
// next reorder (dropped, same id) is passed over for the map's.
func TestEntryAfterIsTheEntrysOwn(t *testing.T) {
	var ls []leaf
	for _, p := range []string{"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"} {
		ls = append(ls, routeLeaves(p, "underlay", "operator")...)
	}
	tr, _ := buildChanges(t, ls)
	acc, _ := accord.Default(5)
	c := &RouteCache{}
	if _, err := c.Routes(tr, acc, 1); err != nil {
		t.Fatal(err)
	}
	if len(c.order) != 3 {
		t.Fatalf("order holds %d entries, want 3", len(c.order))
	}
	// In order: each found at the cursor, which moves on.
	cur := 0
	for i, e := range c.order {
		if got := c.entryAfter(e.id, &cur); got != e || cur != i+1 {
			t.Fatalf("entry %d: got %p at cursor %d, want %p at %d", i, got, cur, e, i+1)
		}
	}
	// Out of order: the map's, the cursor unmoved.
	cur = 0
	last := c.order[2]
	if got := c.entryAfter(last.id, &cur); got != last || cur != 0 {
		t.Fatalf("out of order: got %p at cursor %d, want %p at 0", got, cur, last)
	}
	// A replaced entry still in the order is not the id's.
	live := c.order[0]
	old := *live
	old.dropped = true
	c.order[0] = &old
	cur = 0
	if got := c.entryAfter(live.id, &cur); got != live || cur != 0 {
		t.Fatalf("replaced: got %p at cursor %d, want the live %p at 0", got, cur, live)
	}
	// And a deleted one (dropped, gone from the map) is nobody's.
	delete(c.byEntry, live.id)
	if got := c.entryAfter(live.id, &cur); got != nil {
		t.Fatalf("deleted: got %p, want none", got)
	}
}
