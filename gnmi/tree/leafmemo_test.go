package tree

import "testing"

// TestLeafMemoSpills: every node's memo keeps what was written to it
// while more nodes than the cache has slots take turns, written and read
// in different orders, so that slots are taken over and memos spilled
// and brought back.
func TestLeafMemoSpills(t *testing.T) {
	var nodes []*Node
	var walk func(n *Node)
	walk = func(n *Node) {
		nodes = append(nodes, n)
		for _, c := range n.Children {
			walk(c)
		}
	}
	// Two compilations of the test schema: twice as many nodes as one's.
	walk(testSchema(t).Root)
	walk(testSchema(t).Root)
	if len(nodes) <= memoSlots {
		t.Fatalf("%d schema nodes, need more than %d slots to share them", len(nodes), memoSlots)
	}
	tr := New(testSchema(t))
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for round := range 3 {
		for i, n := range nodes {
			m := tx.memo(n)
			if round > 0 && (m.in != any(i+round-1) || !m.last.Equal(Uint(uint64(i)))) {
				t.Fatalf("round %d: node %d's memo holds %v, %v", round, i, m.in, m.last)
			}
			m.in, m.last = i+round, Uint(uint64(i))
		}
		for i := len(nodes) - 1; i >= 0; i-- {
			if m := tx.memo(nodes[i]); m.in != any(i+round) {
				t.Fatalf("round %d, read back: node %d's memo holds %v", round, i, m.in)
			}
		}
	}
}
