package notary

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

type ctxKey struct{}

func TestQueryServiceListsGetsAndProves(t *testing.T) {
	f := newFixture(t, nil)
	base := time.Unix(1700000000, 0)
	// Transits at levels 5, 3 and 1, at known times.
	for i, lvl := range []uint8{5, 3, 3, 1, 3} {
		f.level(t, 3) // 100%: every transit recorded
		f.n.RecordTransit(notarymodel.Transit{SessionID: fmt.Sprint("q", i), Kind: notarymodel.TransitGrant, Level: lvl,
			Time: base.Add(time.Duration(i) * time.Minute)})
	}
	f.routes(t, 0, 2, "eth0")
	f.sync(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(context.WithValue(ctx, ctxKey{}, "reader"), req)
	}))
	NewService(f.n, func(ctx context.Context) error {
		if ctx.Value(ctxKey{}) != "reader" {
			return errors.New("not a reader")
		}
		return nil
	}).Register(g)
	go g.Serve(ln)
	defer g.Stop()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := notaryv1.NewNotaryServiceClient(cc)
	ctx := context.Background()

	// "Every session transit while the node was at level 3."
	resp, err := c.ListArtifacts(ctx, &notaryv1.ListArtifactsRequest{
		Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_SESSION_TRANSIT}, PostureLevels: []uint32{3}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.GetEntries() {
		ids = append(ids, e.GetSessionTransit().GetSessionId())
	}
	if fmt.Sprint(ids) != "[q1 q2 q4]" {
		t.Errorf("transits at level 3: %v, want [q1 q2 q4]", ids)
	}
	// A time range and paging.
	resp, err = c.ListArtifacts(ctx, &notaryv1.ListArtifactsRequest{SinceUnixNano: base.Add(time.Minute).UnixNano(),
		UntilUnixNano: base.Add(4 * time.Minute).UnixNano(), PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEntries()) != 2 || resp.GetNextIndex() == 0 {
		t.Fatalf("first page: %d entries, next %d", len(resp.GetEntries()), resp.GetNextIndex())
	}
	resp2, err := c.ListArtifacts(ctx, &notaryv1.ListArtifactsRequest{SinceUnixNano: base.Add(time.Minute).UnixNano(),
		UntilUnixNano: base.Add(4 * time.Minute).UnixNano(), PageSize: 2, StartIndex: resp.GetNextIndex()})
	if err != nil || len(resp2.GetEntries()) != 1 || resp2.GetNextIndex() != 0 {
		t.Fatalf("second page: %v %v", resp2, err)
	}
	if _, err := c.ListArtifacts(ctx, &notaryv1.ListArtifactsRequest{PostureLevels: []uint32{9}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("level 9: %v, want INVALID_ARGUMENT", err)
	}

	// Get with an inclusion proof that verifies against the signed
	// checkpoint, using only the public key.
	cpr, err := c.GetCheckpoint(ctx, &notaryv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(cpr.GetVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < cpr.GetTreeSize(); i++ {
		g, err := c.GetArtifact(ctx, &notaryv1.GetArtifactRequest{Index: i})
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.ParseCheckpoint(g.GetCheckpointNote(), v)
		if err != nil {
			t.Fatal(err)
		}
		proof := make(tlog.RecordProof, len(g.GetInclusionProof()))
		for j, h := range g.GetInclusionProof() {
			copy(proof[j][:], h)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, int64(i), tlog.RecordHash(g.GetRawEntry())); err != nil {
			t.Errorf("entry %d: inclusion proof: %v", i, err)
		}
		if g.GetEntry().GetIndex() != i {
			t.Errorf("entry %d decodes as %d", i, g.GetEntry().GetIndex())
		}
	}
	if _, err := c.GetArtifact(ctx, &notaryv1.GetArtifactRequest{Index: cpr.GetTreeSize()}); status.Code(err) != codes.NotFound {
		t.Errorf("entry past the end: %v, want NOT_FOUND", err)
	}
	cons, err := c.GetConsistencyProof(ctx, &notaryv1.GetConsistencyProofRequest{OldSize: 2, NewSize: cpr.GetTreeSize()})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := f.n.Ledger().TreeHash(2)
	proof := make(tlog.TreeProof, len(cons.GetProof()))
	for j, h := range cons.GetProof() {
		copy(proof[j][:], h)
	}
	var root tlog.Hash
	copy(root[:], cpr.GetRootHash())
	if err := tlog.CheckTree(proof, int64(cpr.GetTreeSize()), root, 2, old); err != nil {
		t.Errorf("consistency proof: %v", err)
	}

	// Without the read tier: PERMISSION_DENIED.
	s := NewService(f.n, func(context.Context) error { return errors.New("observer may not") })
	if _, err := s.GetCheckpoint(ctx, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unauthorized: %v", err)
	}
}
