package notary

import (
	"crypto/sha256"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// MutationBuilder makes a mutation's artifact one change at a time, so a
// bulk commit's 600,000 changed leaves need neither a Change each nor a
// string of each path: a leaf's path and its old value's encoding come in
// the caller's reusable buffers, the value hashes go onto the stack, and
// only the listed changes (at most MaxListedChanges below payload
// hashing) keep copies. The artifact is byte for byte BuildMutation's.
type MutationBuilder struct {
	a     *qmv1.NetworkMutationArtifact
	limit int // changes listed
	n     int // changes added
	d     changesDigest
	enc   []byte // the value being hashed, encoded
	memo  *hashMemo
}

// hashMemo remembers the hashes of recent short values, each slot the
// last value of its length and last byte: most leaves of a bulk commit's
// routes have values the other routes share (the table, the device, the
// class), each hashed once instead of once a route. A hit compares the
// bytes, so it is exactly the hash the value would get.
type hashMemo [memoSlots]struct {
	enc []byte
	sum [sha256.Size]byte
}

const (
	memoSlots = 64
	memoMax   = 64 // longer values are hashed without the memo
	// memoFrom is the commit size from which the builder keeps a memo.
	memoFrom = 256
)

func (m *hashMemo) sum(enc []byte) [sha256.Size]byte {
	if len(enc) > memoMax {
		return sha256.Sum256(enc)
	}
	s := &m[(len(enc)*7+int(enc[len(enc)-1]))%memoSlots]
	if s.enc != nil && string(s.enc) == string(enc) {
		return s.sum
	}
	s.enc, s.sum = append(s.enc[:0], enc...), sha256.Sum256(enc)
	return s.sum
}

// hash is SHA-256 of a non-empty encoding, through the memo when the
// builder keeps one.
func (b *MutationBuilder) hash(enc []byte) [sha256.Size]byte {
	if b.memo == nil {
		return sha256.Sum256(enc)
	}
	return b.memo.sum(enc)
}

// NewMutationBuilder starts the artifact of m (its Changes ignored) that
// will have count changes, at fidelity f.
func NewMutationBuilder(m Mutation, count int, f Fidelity) *MutationBuilder {
	b := &MutationBuilder{
		a: &qmv1.NetworkMutationArtifact{
			CommitSequence: m.Seq,
			CommitUnixNano: unixNano(m.Time),
			Writer:         &qmv1.Writer{Identity: m.Writer.Identity, Tier: m.Writer.Tier, Method: m.Writer.Method},
			PostureLevel:   uint32(m.Level),
			Recovered:      m.Recovered,
			Unannotated:    m.Unannotated,
		},
		limit: count,
		d:     changesDigest{h: sha256.New()},
	}
	if !f.PayloadHashing {
		b.limit = min(b.limit, MaxListedChanges)
	}
	if count >= memoFrom {
		b.memo = new(hashMemo)
	}
	b.a.Changes = make([]*qmv1.LeafChange, 0, b.limit)
	return b
}

// Add adds the next change: the leaf's path, whether it was deleted, its
// old value's canonical encoding (AppendValue; empty when it was absent)
// and its new value. Neither buffer is kept.
func (b *MutationBuilder) Add(path []byte, del bool, before []byte, after tree.Value) {
	var bh, ah [sha256.Size]byte
	var bs, as []byte // nil for an absent value, as ValueHash
	if len(before) > 0 {
		bh = b.hash(before)
		bs = bh[:]
	}
	op := qmv1.LeafOperation_LEAF_OPERATION_DELETE
	if !del {
		op = qmv1.LeafOperation_LEAF_OPERATION_UPDATE
		if after.IsSet() {
			b.enc = AppendValue(b.enc[:0], after)
			ah = b.hash(b.enc)
			as = ah[:]
		}
	}
	b.d.addBytes(path, del, bs, as)
	if b.n < b.limit {
		lc := &qmv1.LeafChange{Path: string(path), Operation: op}
		if bs != nil {
			lc.BeforeSha256 = append([]byte(nil), bs...)
		}
		if as != nil {
			lc.AfterSha256 = append([]byte(nil), as...)
		}
		b.a.Changes = append(b.a.Changes, lc)
	}
	b.n++
}

// Artifact finishes the artifact with the changes added so far.
func (b *MutationBuilder) Artifact() *qmv1.NetworkMutationArtifact {
	b.a.ChangeCount = uint32(b.n)
	b.a.ChangesTruncated = len(b.a.Changes) < b.n
	b.a.ChangesSha256 = b.d.sum()
	return b.a
}
