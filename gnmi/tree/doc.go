// Package tree owns Kedge's in-memory data tree: the schema compiled from
// the YANG modules, typed leaf values, gNMI path resolution, all-or-nothing
// transactions with an undo log, incremental schema validation (types,
// ranges, patterns, mandatory leaves, leafrefs) and RFC 7951 JSON encoding.
//
// The tree does no I/O and takes no locks: the store (package
// gnmi/store) serialises writers, persists commits and fans changes out.
// Keeping the tree free of both makes it cheap to test exhaustively and
// keeps the commit path short enough for a 2 ms p99 including fsync.
package tree
