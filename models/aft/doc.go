// Package aft is Kedge's gRIBI RIB: the next hops, next-hop groups and
// IPv4 and IPv6 entries of the default network instance, with the
// references between them, and the decisions gRIBI asks of a RIB: which
// operation is accepted, which fails and why, which waits for an entry it
// references (a forward reference) and which such waiting operations an
// accepted one releases. It is pure: no I/O, no protobuf, no gRPC; the
// gRIBI service (server/gribi) turns wire operations into Ops and the
// RIB's results into ACKs and tree writes.
//
// Its semantics are those of gribigo's rib package (v0.1.3), which the
// gRIBI compliance suite encodes and a differential test here compares
// against; it exists because that RIB checks every operation against a
// copy of the whole table, so 100,000 entries took minutes (20,000 took
// 115 s on this machine, without its checks), where this RIB does each
// operation in constant time.
//
// One difference: an operation waiting for a reference is retried when
// that reference arrives, not (as gribigo does) after every install of
// anything, which is what keeps a waiting operation O(1). So an explicit
// REPLACE that waits while its target is deleted fails when its reference
// arrives rather than at the next unrelated install.
//
// Operations waiting for one reference complete in the order they were
// sent, so the later of two waiting for one key wins (gribigo retries in
// map order, so either may; its differential test keeps to one waiting
// operation per key for that reason).
//
// A RIB is not safe for concurrent use: the gRIBI service applies every
// session's operations through one writer.
package aft
