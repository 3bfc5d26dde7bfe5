// Package ledger is the notary's append-only, tamper-evident log: an RFC
// 6962 Merkle tree over opaque entries (golang.org/x/mod/sumdb/tlog)
// with checkpoints signed in the note format (golang.org/x/mod/sumdb/note).
// The node's notary and the reference Quartermaster receiver both store
// their logs with it.
//
// # Files
//
// A ledger directory holds two files:
//
//   - log: frames, each
//
//     u32 payload length | u32 CRC-32C of type and payload | u8 type | payload
//
//     little-endian, written into a preallocated file (zeros after the
//     written part, so appending does not change the file's size and one
//     fdatasync makes a write durable). The first frame is the header
//     (format and origin). Then come groups, each written with one pwrite
//     and made durable with one fdatasync: a group frame holding the
//     group's total length, entry frames, and a checkpoint frame whose
//     signed note covers every entry so far. A group is the unit of
//     durability: nothing of a group counts until its checkpoint is read
//     back intact.
//
//   - hashes: the tree's stored hashes (tlog.StoredHashIndex order, 32
//     bytes each). Derived data, never synced: Open checks it against the
//     entries and the last signed checkpoint and rebuilds what is missing
//     or wrong.
//
// # Torn tails and corruption
//
// A crash can tear only the last group, the one being written. Open tells
// that apart from damage by evidence: a damaged spot is a torn tail only
// when no intact checkpoint follows it and every byte after the group's
// declared end (or, when the group frame itself is damaged, after the
// largest group the writer makes) is zero, since the preallocated rest of
// the file is never written. A torn group is zeroed and the log continues
// after the previous checkpoint. Anything else is corruption: Open refuses
// with a *CorruptError naming the file and the offset, and changes
// nothing. Entries whose bytes were altered with a matching CRC are caught
// by the tree hash, which must equal the last signed checkpoint
// (ErrTampered). Callers that know a size the log reached durably
// (shipped upstream, or absorbed from the store) pass it as MinSize, so a
// dropped tail that was once durable, or an older copy restored over the
// log, is refused too (ErrRolledBack).
package ledger
