package store

import (
	"strings"
	"sync"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Nodes returns the distinct schema nodes of c's changes, in the order
// of their first change. A commit's changes are a few leaves over and
// over (a bulk Set: each route's prefix, device and class; a gRIBI batch:
// each entry's prefix, group and session), so a watcher that asks which
// parts of the tree a commit touched asks it of a handful of nodes rather
// than of every change: the list is computed once, by the first watcher
// that asks, and shared by all of them (every watcher of the feed reads
// the same *Commit). The result is read-only.
//
// A commit the feed did not deliver (one a test built), or a copy whose
// changes differ from those the list was made of, gets its list computed
// afresh at each call.
func (c *Commit) Nodes() []*tree.Node {
	s := c.nodes
	if s == nil {
		return distinctNodes(c.Changes)
	}
	s.once.Do(func() { s.of, s.nodes = c.Changes, distinctNodes(c.Changes) })
	if !sameSlice(s.of, c.Changes) {
		return distinctNodes(c.Changes)
	}
	return s.nodes
}

// nodeSet is a published commit's distinct nodes, and the changes they
// were computed from.
type nodeSet struct {
	once  sync.Once
	of    []tree.Change
	nodes []*tree.Node
}

func sameSlice(a, b []tree.Change) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// manyNodes is how many distinct nodes distinctNodes tells apart by
// scanning its list before it indexes them in a map.
const manyNodes = 32

// distinctNodes lists the distinct nodes of changes. The changes of one
// list entry come in schema order, and each entry's in the same order, so
// a change's node is most often the one that followed its predecessor's
// the last time: that guess, then the list, then (past manyNodes) a map.
func distinctNodes(changes []tree.Change) []*tree.Node {
	var out []*tree.Node
	var index map[*tree.Node]int
	// after[i] is the index of the node that last followed out[i].
	var after []int
	prev := -1
	for _, ch := range changes {
		i := -1
		switch {
		case prev >= 0 && after[prev] >= 0 && out[after[prev]] == ch.Node:
			i = after[prev]
		case prev >= 0 && out[prev] == ch.Node:
			i = prev
		case index != nil:
			if j, ok := index[ch.Node]; ok {
				i = j
			}
		default:
			for j, n := range out {
				if n == ch.Node {
					i = j
					break
				}
			}
		}
		if i < 0 {
			i = len(out)
			out = append(out, ch.Node)
			after = append(after, -1)
			if index != nil {
				index[ch.Node] = i
			} else if len(out) > manyNodes {
				index = make(map[*tree.Node]int, 2*len(out))
				for j, n := range out {
					index[n] = j
				}
			}
		}
		if prev >= 0 {
			after[prev] = i
		}
		prev = i
	}
	return out
}

// Touches reports whether any of c's changes is at a schema path that
// starts with one of prefixes: how a watcher (a reconciler, the posture
// engine, the underlay loop) tells whether a commit concerns it. It
// matches the commit's distinct schema nodes (Nodes), not its changes: a
// watcher that does not care about a 100,000-route Set no longer goes
// through its 300,000 changes (server/reconcile BenchmarkRelevantBulk).
func (c *Commit) Touches(prefixes []string) bool {
	for _, n := range c.Nodes() {
		for _, p := range prefixes {
			if strings.HasPrefix(n.Path, p) {
				return true
			}
		}
	}
	return false
}
