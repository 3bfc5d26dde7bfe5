// Package gribi is the daemon's gRIBI service (github.com/openconfig/gribi
// v1): Modify, Get and Flush for the default network instance, served
// on the daemon's gRPC servers beside gNMI with the same credentials,
// identities and tiers.
//
// Data flow, one way as everywhere in Kedge:
//
//	Modify → session checks (parameters, election, posture, tier)
//	       → RIB (models/aft: validation, references, forward references)
//	       → one durable commit of /kedge/aft per batch (config, written
//	         only here) → RIB_PROGRAMMED
//	       → change feed → route reconciler → route backend (protocol 107,
//	         posture classes) → entry state (installed | withheld |
//	         overridden | failed) and /kedge/aft/state/programmed-sequence
//	       → FIB_PROGRAMMED or FIB_FAILED, read back from the tree
//
// The handlers never touch the kernel: they write the tree and read its
// state, like a gNMI client.
//
// One writer goroutine applies every session's operations, in the order
// they arrived, in batches: each batch is one store commit (one fdatasync)
// however many operations it holds, which is what makes a bulk load of
// 100,000 entries cheap.
//
// Persistence: entries live in the durable tree, so the RIB is rebuilt
// from it at start. A session that asked for PRESERVE leaves its entries
// when it ends and they survive a restart; one that asked for DELETE has
// its entries removed when it ends, and any still in the tree at start
// (the daemon stopped while it was connected) are removed before the
// service accepts a session.
package gribi
