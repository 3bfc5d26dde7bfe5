package store

import (
	"slices"
	"strings"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Touches reports whether any of c's changes is at a schema path that
// starts with one of prefixes: how a watcher (a reconciler, the posture
// engine, the underlay loop) tells whether a commit concerns it. A
// commit's changes are a few leaves (schema nodes) over and over (a gRIBI
// batch: each entry's prefix, group and session), so a node found not to
// match is remembered among the last few and its next changes are not
// matched again: a watcher that does not care about a 100,000-entry batch
// went through 300,000 changes' prefix matches for it
// (server/reconcile BenchmarkRelevantBulk).
func (c *Commit) Touches(prefixes []string) bool {
	var seen [4]*tree.Node
	next := 0
	for _, ch := range c.Changes {
		if slices.Contains(seen[:], ch.Node) {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(ch.Node.Path, p) {
				return true
			}
		}
		seen[next] = ch.Node
		next = (next + 1) % len(seen)
	}
	return false
}
