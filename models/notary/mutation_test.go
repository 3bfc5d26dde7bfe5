package notary

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// referenceMutation is BuildMutation as it was before MutationBuilder: a
// Change with a path string each, a hash slice per value and one digest
// write per change. The builder must produce its bytes exactly.
func referenceMutation(m Mutation, f Fidelity) *qmv1.NetworkMutationArtifact {
	a := &qmv1.NetworkMutationArtifact{
		CommitSequence: m.Seq,
		CommitUnixNano: unixNano(m.Time),
		Writer:         &qmv1.Writer{Identity: m.Writer.Identity, Tier: m.Writer.Tier, Method: m.Writer.Method},
		PostureLevel:   uint32(m.Level),
		ChangeCount:    uint32(len(m.Changes)),
		Recovered:      m.Recovered,
		Unannotated:    m.Unannotated,
	}
	limit := len(m.Changes)
	if !f.PayloadHashing {
		limit = min(limit, MaxListedChanges)
	}
	a.Changes = make([]*qmv1.LeafChange, 0, limit)
	h := sha256.New()
	for i, c := range m.Changes {
		before, after := ValueHash(c.Before), []byte(nil)
		op := qmv1.LeafOperation_LEAF_OPERATION_DELETE
		if !c.Delete {
			after, op = ValueHash(c.After), qmv1.LeafOperation_LEAF_OPERATION_UPDATE
		}
		var b []byte
		b = binary.AppendUvarint(b, uint64(len(c.Path)))
		b = append(b, c.Path...)
		b = append(b, map[bool]byte{false: 1, true: 2}[c.Delete])
		b = binary.AppendUvarint(b, uint64(len(before)))
		b = append(b, before...)
		b = binary.AppendUvarint(b, uint64(len(after)))
		b = append(b, after...)
		h.Write(b)
		if i < limit {
			a.Changes = append(a.Changes, &qmv1.LeafChange{Path: c.Path, Operation: op, BeforeSha256: before, AfterSha256: after})
		}
	}
	a.ChangesTruncated = limit < len(m.Changes)
	a.ChangesSha256 = h.Sum(nil)
	return a
}

func randValue(r *rand.Rand) tree.Value {
	switch r.IntN(7) {
	case 0:
		return tree.Value{}
	case 1:
		return tree.Uint(r.Uint64() >> r.IntN(64))
	case 2:
		return tree.Int(r.Int64() - r.Int64())
	case 3:
		return tree.Bool(r.IntN(2) == 1)
	case 4:
		els := make([]tree.Value, r.IntN(4))
		for i := range els {
			els[i] = tree.String(fmt.Sprint(r.IntN(100)))
		}
		return tree.ListValue(els)
	case 5:
		return tree.String("")
	}
	return tree.String(string(bytes.Repeat([]byte{'a' + byte(r.IntN(26))}, r.IntN(200))))
}

// randMutation is a random commit: small or bulk (past MaxListedChanges),
// updates and deletes, paths long and short.
func randMutation(r *rand.Rand) Mutation {
	m := Mutation{Seq: r.Uint64(), Writer: Writer{"w" + fmt.Sprint(r.IntN(9)), "operator", "unix"}, Level: uint8(r.IntN(6)),
		Recovered: r.IntN(4) == 0, Unannotated: r.IntN(4) == 0}
	if r.IntN(3) > 0 {
		m.Time = time.Unix(1700000000+r.Int64N(1e6), r.Int64N(1e9))
	}
	n := []int{0, 1, 3, 50, MaxListedChanges - 1, MaxListedChanges, MaxListedChanges + 1, 3000}[r.IntN(8)]
	for i := range n {
		c := Change{Path: fmt.Sprintf("/kedge/routes/route[prefix=10.%d.%d.0/24][table=254]/config/%s", i/256, i%256,
			[]string{"prefix", "table", "device", "next-hop", "x"}[r.IntN(5)]), Before: randValue(r)}
		if r.IntN(5) == 0 {
			c.Delete = true
			if r.IntN(2) == 0 {
				c.After = randValue(r) // a delete's value is never hashed
			}
		} else {
			c.After = randValue(r)
		}
		m.Changes = append(m.Changes, c)
	}
	return m
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMutationBuilderMatchesReferenceBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 2))
	for i := range 200 {
		m := randMutation(r)
		for lvl := uint8(1); lvl <= 5; lvl++ {
			f := fidelity(t, lvl)
			want, got := marshal(t, referenceMutation(m, f)), marshal(t, BuildMutation(m, f))
			if !bytes.Equal(got, want) {
				t.Fatalf("mutation %d (%d changes) at level %d: the builder's artifact differs from the reference", i, len(m.Changes), lvl)
			}
			if !bytes.Equal(ChangesDigest(m.Changes), referenceMutation(m, f).GetChangesSha256()) {
				t.Fatalf("mutation %d: ChangesDigest differs from the reference", i)
			}
		}
	}
}

// TestOldValuesMatchDecodeAnnotation: each value Next returns is the
// encoding of what DecodeAnnotation decodes, and both fail on the same
// damaged annotations (cut short, trailing bytes, a bad value).
func TestOldValuesMatchDecodeAnnotation(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 3))
	for i := range 500 {
		a := Annotation{Writer: Writer{"alice", "operator", "password"}, Level: uint8(r.IntN(6))}
		for range r.IntN(40) {
			a.Old = append(a.Old, randValue(r))
		}
		enc := AppendAnnotation(nil, a)
		switch r.IntN(4) {
		case 1:
			enc = enc[:r.IntN(len(enc)+1)]
		case 2:
			enc = append(enc, byte(r.IntN(256)))
		case 3:
			enc[r.IntN(len(enc))] = byte(r.IntN(256))
		}
		dec, derr := DecodeAnnotation(enc)
		w, level, olds, err := ReadAnnotation(enc)
		if err == nil {
			for j := range olds.Len() {
				var v []byte
				if v, err = olds.Next(); err != nil {
					break
				}
				if want := AppendValue(nil, dec.Old[j]); derr == nil && !bytes.Equal(v, want) {
					t.Fatalf("annotation %d value %d: Next %x, DecodeAnnotation's value encodes as %x", i, j, v, want)
				}
			}
			if err == nil {
				err = olds.End()
			}
		}
		if (err == nil) != (derr == nil) {
			t.Fatalf("annotation %d: streamed error %v, DecodeAnnotation's %v", i, err, derr)
		}
		if derr == nil && (w != dec.Writer || level != dec.Level) {
			t.Fatalf("annotation %d: header %v/%d, DecodeAnnotation's %v/%d", i, w, level, dec.Writer, dec.Level)
		}
	}
}
