package maproom

import "testing"

// TestReserve: a batch that at least doubles the map and is past Min
// gets a copy with every entry and the room recorded; a small batch, one
// smaller than the map, or one within the room it had leaves the map as
// it is.
func TestReserve(t *testing.T) {
	m := map[int]int{}
	for i := range 1500 {
		m[i] = i
	}
	var r Room
	r.Held(len(m))
	for _, tc := range []struct {
		name string
		n    int
	}{{"below Min", Min - 1}, {"smaller than the map", 1499}} {
		if got := Reserve(m, &r, tc.n); len(got) != len(m) || r != 1500 {
			t.Fatalf("%s: room %d, map %d entries", tc.name, r, len(got))
		}
		m[-1] = -1 // the same map: writes show through
		if _, ok := Reserve(m, &r, tc.n)[-1]; !ok {
			t.Fatalf("%s: the map was copied", tc.name)
		}
		delete(m, -1)
	}
	c := Reserve(m, &r, 2000)
	if r != 3500 || len(c) != 1500 {
		t.Fatalf("reserve 2000: room %d, %d entries; want 3500, 1500", r, len(c))
	}
	for i := range 1500 {
		if c[i] != i {
			t.Fatalf("entry %d lost in the copy", i)
		}
	}
	c[-1] = -1
	if _, ok := m[-1]; ok {
		t.Fatal("reserve 2000 returned the same map")
	}
	// Entries gone: the room stays, so the same batch again copies nothing.
	for i := range 1500 {
		delete(c, i)
	}
	c[-2] = -2
	got := Reserve(c, &r, 2000)
	got[-3] = -3
	if _, ok := c[-3]; !ok || r != 3500 {
		t.Fatalf("a batch within the room copied the map (room %d)", r)
	}
}
