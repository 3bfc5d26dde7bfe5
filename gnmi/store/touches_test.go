package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Nodes lists each distinct node of a commit's changes once, in the order
// of its first change, whatever the pattern: runs of entries in schema
// order (the guess hits), shuffled changes (it misses), and more distinct
// nodes than the list scans (the map). The reference is a plain set.
func TestNodesAgainstASet(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	pool := make([]*tree.Node, 100)
	for i := range pool {
		pool[i] = &tree.Node{Name: fmt.Sprint(i), Path: fmt.Sprintf("/kedge/x%d/leaf", i)}
	}
	for round := range 500 {
		distinct := 1 + rng.IntN(len(pool))
		if round%2 == 0 {
			distinct = 1 + rng.IntN(6)
		}
		nodes := pool[:distinct]
		var changes []tree.Change
		for range rng.IntN(2000) {
			if rng.IntN(3) == 0 {
				// One entry's leaves in order, as a bulk Set writes them.
				for _, n := range nodes {
					changes = append(changes, tree.Change{Node: n})
				}
				continue
			}
			changes = append(changes, tree.Change{Node: nodes[rng.IntN(len(nodes))]})
		}
		var want []*tree.Node
		seen := map[*tree.Node]bool{}
		for _, ch := range changes {
			if !seen[ch.Node] {
				seen[ch.Node] = true
				want = append(want, ch.Node)
			}
		}
		c := &Commit{Changes: changes}
		if got := c.Nodes(); !slices.Equal(got, want) {
			t.Fatalf("round %d: %d changes of %d nodes: Nodes %d nodes, want %d", round, len(changes), distinct, len(got), len(want))
		}
	}
}

// Every watcher reads the same *Commit at once: Nodes is computed once
// and each caller sees the whole list (go test -race checks the sharing).
func TestNodesShared(t *testing.T) {
	a := &tree.Node{Name: "a", Path: "/kedge/routes/route/config/a"}
	b := &tree.Node{Name: "b", Path: "/kedge/mesh/peers/peer/config/b"}
	c := &Commit{nodes: &nodeSet{}} // as the feed publishes it
	for range 1000 {
		c.Changes = append(c.Changes, tree.Change{Node: a})
	}
	c.Changes = append(c.Changes, tree.Change{Node: b})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if !c.Touches([]string{"/kedge/mesh"}) || c.Touches([]string{"/kedge/posture"}) || len(c.Nodes()) != 2 {
				t.Error("a watcher saw an incomplete node list")
			}
		})
	}
	wg.Wait()
	if &c.Nodes()[0] != &c.nodes.nodes[0] {
		t.Error("a published commit's nodes computed again")
	}
	// A copy with other changes (a test's) gets its own nodes.
	cc := &Commit{Changes: c.Changes[:1000], nodes: c.nodes}
	if cc.Touches([]string{"/kedge/mesh"}) || len(cc.Nodes()) != 1 {
		t.Error("a copy with other changes got the original's nodes")
	}
}

// BenchmarkTouchesBulk: a watcher telling that a 100,000-route commit
// (three leaves a route) is not for it, as the first watcher to ask
// (which lists the commit's nodes) and as each later one (which reuses
// them): server/reconcile BenchmarkRelevantBulk is the first.
func BenchmarkTouchesBulk(b *testing.B) {
	base := "/kedge/routes/route/config/"
	leaves := []*tree.Node{{Name: "prefix", Path: base + "prefix"}, {Name: "device", Path: base + "device"},
		{Name: "class", Path: base + "class"}}
	var changes []tree.Change
	for range 100_000 {
		for _, l := range leaves {
			changes = append(changes, tree.Change{Node: l})
		}
	}
	mesh := []string{"/kedge/mesh", "/kedge/accords"}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if (&Commit{Changes: changes, nodes: &nodeSet{}}).Touches(mesh) {
				b.Fatal("a routes commit touches the mesh")
			}
		}
	})
	b.Run("later", func(b *testing.B) {
		c := &Commit{Changes: changes, nodes: &nodeSet{}}
		c.Nodes()
		for b.Loop() {
			if c.Touches(mesh) {
				b.Fatal("a routes commit touches the mesh")
			}
		}
	})
}
