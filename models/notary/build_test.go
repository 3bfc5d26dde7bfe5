package notary

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

func fidelity(t *testing.T, level uint8) Fidelity {
	t.Helper()
	a, err := accord.Default(level)
	if err != nil {
		t.Fatal(err)
	}
	return FidelityOf(a, nil)
}

func TestValueHashSeparatesTypesAndAbsence(t *testing.T) {
	vals := []tree.Value{
		tree.String("1"), tree.Uint(1), tree.Int(1), tree.Bool(true),
		tree.String(""), tree.ListValue([]tree.Value{tree.String("1")}),
		tree.ListValue([]tree.Value{tree.String("a"), tree.String("b")}),
		tree.ListValue([]tree.Value{tree.String("ab")}), tree.Int(-1),
	}
	seen := map[string]int{}
	for i, v := range vals {
		h := ValueHash(v)
		if len(h) != sha256.Size {
			t.Fatalf("value %d: hash of %d bytes", i, len(h))
		}
		if j, dup := seen[string(h)]; dup {
			t.Errorf("values %d (%v) and %d (%v) hash alike", j, vals[j], i, v)
		}
		seen[string(h)] = i
		if !bytes.Equal(h, ValueHash(v)) {
			t.Errorf("value %d: two hashes", i)
		}
	}
	if ValueHash(tree.Value{}) != nil {
		t.Error("an absent value has a hash")
	}
}

func mutation(n int) Mutation {
	m := Mutation{Seq: 42, Time: time.Unix(1700000000, 5), Writer: Writer{"alice", "operator", "password"}, Level: 3}
	for i := 0; i < n; i++ {
		c := Change{Path: fmt.Sprintf("/kedge/routes/route[prefix=10.0.%d.0/24][table=254]/config/next-hop", i), After: tree.String("192.0.2.1")}
		if i%3 == 1 {
			c.Before = tree.String("192.0.2.9")
		}
		if i%3 == 2 {
			c.Before, c.Delete, c.After = tree.String("192.0.2.9"), true, tree.Value{}
		}
		m.Changes = append(m.Changes, c)
	}
	return m
}

func TestBuildMutationListsBoundedChangesWithoutPayloadHashing(t *testing.T) {
	m := mutation(MaxListedChanges + 10)
	low, full := BuildMutation(m, fidelity(t, 5)), BuildMutation(m, fidelity(t, 1))
	if len(low.GetChanges()) != MaxListedChanges || !low.GetChangesTruncated() {
		t.Errorf("level 5: %d changes listed, truncated %v; want %d, true", len(low.GetChanges()), low.GetChangesTruncated(), MaxListedChanges)
	}
	if len(full.GetChanges()) != len(m.Changes) || full.GetChangesTruncated() {
		t.Errorf("level 1 (payload hashing): %d changes listed, truncated %v; want all %d", len(full.GetChanges()), full.GetChangesTruncated(), len(m.Changes))
	}
	for _, a := range []*qmv1.NetworkMutationArtifact{low, full} {
		if a.GetChangeCount() != uint32(len(m.Changes)) || !bytes.Equal(a.GetChangesSha256(), ChangesDigest(m.Changes)) {
			t.Errorf("count %d / digest do not cover every change", a.GetChangeCount())
		}
		if a.GetCommitSequence() != 42 || a.GetWriter().GetTier() != "operator" || a.GetPostureLevel() != 3 {
			t.Errorf("commit metadata lost: %v", a)
		}
	}
	c0, c1, c2 := full.GetChanges()[0], full.GetChanges()[1], full.GetChanges()[2]
	if c0.GetBeforeSha256() != nil || !bytes.Equal(c0.GetAfterSha256(), ValueHash(tree.String("192.0.2.1"))) {
		t.Errorf("created leaf: %v", c0)
	}
	if !bytes.Equal(c1.GetBeforeSha256(), ValueHash(tree.String("192.0.2.9"))) || c1.GetOperation() != qmv1.LeafOperation_LEAF_OPERATION_UPDATE {
		t.Errorf("updated leaf: %v", c1)
	}
	if c2.GetAfterSha256() != nil || c2.GetOperation() != qmv1.LeafOperation_LEAF_OPERATION_DELETE || c2.GetBeforeSha256() == nil {
		t.Errorf("deleted leaf: %v", c2)
	}
	// The digest binds every change: altering one value changes it.
	m2 := mutation(MaxListedChanges + 10)
	m2.Changes[MaxListedChanges+5].After = tree.String("192.0.2.2")
	if bytes.Equal(ChangesDigest(m2.Changes), low.GetChangesSha256()) {
		t.Error("a change beyond the listed ones does not alter the digest")
	}
}

func TestBuildTransitByLevel(t *testing.T) {
	tr := Transit{SessionID: "s-1", Kind: TransitDrain, Level: 2, SessionLevel: 2, Time: time.Unix(1700000000, 0),
		PeerSPIFFEID: "spiffe://example.org/op", PeerNode: "n2", PeerCluster: "c2", Tier: "operator",
		SessionType: "routine", Reason: "posture level 2",
		Frames: []FrameHeader{{Inbound: true, Type: "ATTEST-INIT", Seq: 1, Length: 300, PayloadSHA256: bytes.Repeat([]byte{7}, 32)},
			{Type: "GRANT", Seq: 2, Length: 40}}}
	for lvl := uint8(1); lvl <= 5; lvl++ {
		a := BuildTransit(tr, fidelity(t, lvl))
		if a.GetKind() != qmv1.TransitKind_TRANSIT_KIND_DRAIN || a.GetPostureLevelAtTransit() != 2 || a.GetSessionId() != "s-1" {
			t.Errorf("level %d: metadata lost: %v", lvl, a)
		}
		if lvl == 1 {
			if len(a.GetFrameHeaders()) != 2 || a.GetFrameHeaders()[0].GetFrameType() != "ATTEST-INIT" ||
				a.GetFrameHeaders()[0].GetDirection() != qmv1.FrameDirection_FRAME_DIRECTION_INBOUND ||
				len(a.GetFrameHeaders()[0].GetPayloadSha256()) != 32 {
				t.Errorf("level 1: frame headers %v", a.GetFrameHeaders())
			}
			if !bytes.Equal(a.GetMetadataSha256(), TransitDigest(a)) {
				t.Error("level 1: metadata hash does not verify")
			}
			a.Reason = "edited"
			if bytes.Equal(a.GetMetadataSha256(), TransitDigest(a)) {
				t.Error("level 1: editing the reason keeps the metadata hash valid")
			}
			continue
		}
		if len(a.GetFrameHeaders()) != 0 || a.GetMetadataSha256() != nil {
			t.Errorf("level %d: frame headers or payload hash recorded: %v", lvl, a)
		}
	}
	for _, k := range []string{TransitOpen, TransitGrant, TransitDeny, TransitDrain, TransitClose} {
		if TransitKind(k) == qmv1.TransitKind_TRANSIT_KIND_UNSPECIFIED {
			t.Errorf("kind %s unmapped", k)
		}
	}
}

func TestBuildForensicCountsTheDocument(t *testing.T) {
	doc := []byte(`{"seq":3,"from":5,"to":1,"mesh":{"peers":{"peer":[{"name":"a"},{"name":"b"}]}},` +
		`"routes":{"route":[{},{},{}]},"sessions":{"kedge:session":[{}]},"sha256":"x"}`)
	a := BuildForensic(Forensic{Seq: 3, From: 5, To: 1, Document: doc, KernelRoutes: []string{"10.0.0.0/24 table 254 dev eth0"}})
	if a.GetPeers() != 2 || a.GetRoutes() != 3 || a.GetSessions() != 1 {
		t.Errorf("counts peers %d routes %d sessions %d, want 2 3 1", a.GetPeers(), a.GetRoutes(), a.GetSessions())
	}
	sum := sha256.Sum256(doc)
	if !bytes.Equal(a.GetDocumentSha256(), sum[:]) || len(a.GetKernelRoutes()) != 1 {
		t.Errorf("document hash or kernel routes wrong: %v", a)
	}
}
