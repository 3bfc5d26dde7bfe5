package reconcile

import (
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// bulkCommit is a gRIBI bulk load's batch as the feed holds it: n IPv4
// entries' three config leaves each, one after another.
func bulkCommit(n int) *store.Commit {
	base := "/kedge/aft/ipv4-entries/ipv4-entry/config/"
	leaves := []*tree.Node{{Name: "prefix", Path: base + "prefix"}, {Name: "next-hop-group", Path: base + "next-hop-group"},
		{Name: "session", Path: base + "session"}}
	c := &store.Commit{Changes: make([]tree.Change, 0, 3*n)}
	for range n {
		for _, l := range leaves {
			c.Changes = append(c.Changes, tree.Change{Node: l})
		}
	}
	return c
}

// BenchmarkRelevantBulk times a reconciler that does not care about
// /kedge/aft (the mesh's prefixes) telling a 100,000-entry gRIBI batch
// (300,000 changes) is not for it, which every such reconciler does
// for every bulk commit.
func BenchmarkRelevantBulk(b *testing.B) {
	r := &Reconciler[int]{o: Options[int]{Prefixes: []string{"/kedge/mesh", "/kedge/accords"}}}
	c := bulkCommit(100_000)
	for b.Loop() {
		if r.relevant(c) {
			b.Fatal("a gRIBI batch relevant to the mesh")
		}
	}
}

// TestRelevantAfterRepeatedLeaves: the irrelevant leaves a commit's scan
// remembers (store.Commit.Touches) are those schema nodes alone: a
// relevant leaf of the same name after a bulk of irrelevant ones, or
// after more distinct irrelevant leaves than it remembers, still makes
// the commit relevant; a commit of irrelevant leaves alone does not.
func TestRelevantAfterRepeatedLeaves(t *testing.T) {
	r := &Reconciler[int]{o: Options[int]{Prefixes: []string{"/kedge/mesh", "/kedge/accords"}}}
	bulk := bulkCommit(1000)
	if r.relevant(bulk) {
		t.Fatal("a gRIBI batch relevant to the mesh")
	}
	mesh := &tree.Node{Name: "prefix", Path: "/kedge/mesh/peers/peer/config/prefix"}
	c := bulkCommit(1000)
	c.Changes = append(c.Changes, tree.Change{Node: mesh})
	if !r.relevant(c) {
		t.Error("a mesh leaf after a gRIBI batch: not relevant")
	}
	var others []tree.Change
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		others = append(others, tree.Change{Node: &tree.Node{Name: name, Path: "/kedge/routes/route/config/" + name}})
	}
	c = &store.Commit{Changes: append(append(others, others...), tree.Change{Node: mesh})}
	if !r.relevant(c) {
		t.Error("a mesh leaf after six distinct route leaves twice: not relevant")
	}
	// A new commit: a commit's distinct nodes are computed once, so its
	// changes are never edited after a watcher read it.
	c = &store.Commit{Changes: c.Changes[:len(c.Changes)-1]}
	if r.relevant(c) {
		t.Error("route leaves alone relevant to the mesh")
	}
}
