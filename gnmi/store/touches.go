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
// a change's node is most often that of the change one entry back: the
// change period changes before it, where period is the distance at which
// the last lookup found its node seen before. Only a change that is not
// is looked up among the nodes listed (by scanning, past manyNodes in a
// map); a 100,000-route commit costs one comparison a change.
func distinctNodes(changes []tree.Change) []*tree.Node {
	var out []*tree.Node
	var last []int // last[j]: the last change looked up that was out[j]'s
	var index map[*tree.Node]int
	period := 1
	for i, ch := range changes {
		if i >= period && changes[i-period].Node == ch.Node {
			continue
		}
		j := -1
		if index != nil {
			if k, ok := index[ch.Node]; ok {
				j = k
			}
		} else {
			for k, n := range out {
				if n == ch.Node {
					j = k
					break
				}
			}
		}
		if j >= 0 {
			period, last[j] = i-last[j], i
			continue
		}
		out = append(out, ch.Node)
		last = append(last, i)
		if index != nil {
			index[ch.Node] = len(out) - 1
		} else if len(out) > manyNodes {
			index = make(map[*tree.Node]int, 2*len(out))
			for k, n := range out {
				index[n] = k
			}
		}
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
