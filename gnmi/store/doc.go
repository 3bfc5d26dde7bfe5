// Package store owns Kedge's tree store: one versioned data tree (package
// gnmi/tree) whose writers take turns and whose readers each read a
// published snapshot with no lock, config commits that are validated,
// written to a log and fdatasync'd before they are acknowledged, non-durable state
// commits from reconcilers, and the change feed that gNMI Subscribe and
// the dataplane reconcilers both read.
//
// On disk the store keeps a write-ahead log of committed change sets in
// preallocated segment files (wal.go: one write and one fdatasync per
// commit, each record framed with its length and CRC-32C) and, in an
// embedded bbolt database, a snapshot of the whole config tree with the
// small named blobs of PutMeta as of that snapshot. Restart loads the
// snapshot and replays the log after it, restoring the tree, the metas
// and the sequence exactly; a record torn by a crash was never
// acknowledged and is dropped. bbolt alone needs two syncs per
// transaction, which was most of a single-leaf Set's latency.
//
// Config and state commits share one sequence, so a watcher sees them in
// the order they happened. State commits are not persisted: after a
// restart numbering continues from the last durable commit and state is
// rebuilt by the reconcilers, so no watcher spans a restart.
package store
