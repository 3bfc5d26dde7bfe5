// Package store owns Kedge's tree store: one data tree (package
// gnmi/tree) behind a lock, config commits that are validated, persisted
// to an embedded bbolt database and fsync'd before they are acknowledged,
// non-durable state commits from reconcilers, and the change feed that
// gNMI Subscribe and the dataplane reconcilers both read.
//
// On disk the store keeps a log of committed change sets (one bbolt key
// per commit, keyed by sequence number) and, from time to time, a
// snapshot of the whole config tree; restart loads the snapshot and
// replays the log after it, restoring the tree and the sequence exactly.
// Appending one small record per commit is what keeps a single-leaf
// commit near one fsync; rewriting the tree's records in place would
// cost a B+tree update per leaf.
//
// Config and state commits share one sequence, so a watcher sees them in
// the order they happened. State commits are not persisted: after a
// restart numbering continues from the last durable commit and state is
// rebuilt by the reconcilers, so no watcher spans a restart.
package store
