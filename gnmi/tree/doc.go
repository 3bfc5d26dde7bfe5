// Package tree owns Kedge's in-memory data tree: the schema compiled from
// the YANG modules, typed leaf values, gNMI path resolution and wildcard
// walks, all-or-nothing transactions, incremental schema validation
// (types, ranges, patterns, mandatory leaves, leafrefs) and RFC 7951 JSON
// encoding.
//
// The tree is versioned: a transaction builds the next version by copying
// only the instances (and list trie nodes) on the paths it writes, and
// shares the rest with the version before. A committed version never
// changes, so a reader holding one (Tree.Snapshot) reads it with no lock
// while the writer commits; rolling back is dropping the new version, and
// what a transaction changed is each copy compared with its original.
//
// The tree does no I/O and takes no locks: the store (package
// gnmi/store) serialises writers, persists commits, publishes versions
// and fans changes out. Keeping the tree free of both makes it cheap to
// test exhaustively and keeps the commit path short enough for a 2 ms p99
// including fsync.
package tree
