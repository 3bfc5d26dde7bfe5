// Package store owns Kedge's tree store: one versioned data tree (package
// gnmi/tree) whose writers take turns and whose readers each read a
// published snapshot with no lock, config commits that are validated,
// written to a log and fdatasync'd before they are acknowledged, non-durable state
// commits from reconcilers, and the change feed that gNMI Subscribe and
// the dataplane reconcilers both read.
//
// On disk the store keeps a write-ahead log of committed change sets in
// preallocated segment files (package internal/wal: one write and one
// fdatasync per commit) and, in an embedded bbolt database (tree.db), a
// checksummed snapshot of the whole config tree with the small named
// blobs of PutMeta as of that snapshot (snapshot.go). Restart loads the
// snapshot and replays the log after it, restoring the tree, the metas
// and the sequence exactly. bbolt alone needs two syncs per transaction,
// which was most of a single-leaf Set's latency.
//
// Only a record torn by a crash at the very end of the log, which was
// never acknowledged, is dropped on restart. Damage anywhere before that
// (a changed byte, a zeroed page, a truncated or missing segment, a
// damaged tree.db) makes Open refuse with a *DamageError that names the
// file, the offset and how many commits follow it, and changes no file;
// Check reports the same without opening, and Recover drops what Check
// reported, moving the originals aside (recover.go). A write that fails
// for lack of disk space is a *NoSpaceError naming the disk (disk.go).
//
// Config and state commits share one sequence, so a watcher sees them in
// the order they happened. State commits are not persisted: after a
// restart numbering continues from the last durable commit and state is
// rebuilt by the reconcilers, so no watcher spans a restart.
package store
