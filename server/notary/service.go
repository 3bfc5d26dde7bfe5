package notary

import (
	"bytes"
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
)

// maxPage bounds one ListArtifacts response.
const maxPage = 1000

// Service is the NotaryService gRPC server over a Notary: the edge where
// the notary's errors become gRPC codes.
type Service struct {
	notaryv1.UnimplementedNotaryServiceServer
	n *Notary
	// authorize allows a caller to read (the daemon's read tier check).
	authorize func(ctx context.Context) error
}

// NewService returns the query service; authorize is required and runs
// before every call.
func NewService(n *Notary, authorize func(ctx context.Context) error) *Service {
	return &Service{n: n, authorize: authorize}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { notaryv1.RegisterNotaryServiceServer(g, s) }

func (s *Service) allow(ctx context.Context) error {
	if s.authorize == nil {
		return status.Error(codes.PermissionDenied, "no authorizer configured")
	}
	if err := s.authorize(ctx); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// ListArtifacts lists entries by type, event time and posture level.
func (s *Service) ListArtifacts(ctx context.Context, req *notaryv1.ListArtifactsRequest) (*notaryv1.ListArtifactsResponse, error) {
	if err := s.allow(ctx); err != nil {
		return nil, err
	}
	q := Query{Types: req.GetTypes(), Since: req.GetSinceUnixNano(), Until: req.GetUntilUnixNano(),
		Start: int64(req.GetStartIndex()), Limit: int(min(req.GetPageSize(), maxPage))}
	for _, t := range q.Types {
		if _, ok := qmv1.ArtifactType_name[int32(t)]; !ok || t == qmv1.ArtifactType_ARTIFACT_TYPE_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "list artifacts: unknown type %d", t)
		}
	}
	for _, l := range req.GetPostureLevels() {
		if l > 255 || !accord.Valid(uint8(l)) {
			return nil, status.Errorf(codes.InvalidArgument, "list artifacts: posture level %d out of range 1..5", l)
		}
		q.Levels = append(q.Levels, uint8(l))
	}
	if q.Until != 0 && q.Since > q.Until {
		return nil, status.Errorf(codes.InvalidArgument, "list artifacts: since %d is after until %d", q.Since, q.Until)
	}
	es, next, err := s.n.List(q)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &notaryv1.ListArtifactsResponse{Entries: es, NextIndex: uint64(next), TreeSize: uint64(s.n.Checkpoint().Size)}, nil
}

// GetArtifact returns one entry with its inclusion proof in the latest
// checkpoint.
func (s *Service) GetArtifact(ctx context.Context, req *notaryv1.GetArtifactRequest) (*notaryv1.GetArtifactResponse, error) {
	if err := s.allow(ctx); err != nil {
		return nil, err
	}
	cp := s.n.Checkpoint()
	i := int64(req.GetIndex())
	if req.GetIndex() >= uint64(cp.Size) {
		return nil, status.Errorf(codes.NotFound, "get artifact %d: the log holds %d", req.GetIndex(), cp.Size)
	}
	e, raw, err := s.n.Get(i)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	proof, err := s.n.Ledger().ProveRecord(i, cp.Size)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &notaryv1.GetArtifactResponse{Entry: e, RawEntry: raw, CheckpointNote: cp.Note, TreeSize: uint64(cp.Size)}
	for _, h := range proof {
		resp.InclusionProof = append(resp.InclusionProof, bytes.Clone(h[:]))
	}
	return resp, nil
}

// GetCheckpoint returns the latest checkpoint.
func (s *Service) GetCheckpoint(ctx context.Context, _ *notaryv1.GetCheckpointRequest) (*notaryv1.GetCheckpointResponse, error) {
	if err := s.allow(ctx); err != nil {
		return nil, err
	}
	cp := s.n.Checkpoint()
	return &notaryv1.GetCheckpointResponse{Note: cp.Note, TreeSize: uint64(cp.Size), RootHash: bytes.Clone(cp.Hash[:]),
		VerifierKey: s.n.VerifierKey()}, nil
}

// GetConsistencyProof proves that the log at new_size extends old_size.
func (s *Service) GetConsistencyProof(ctx context.Context, req *notaryv1.GetConsistencyProofRequest) (*notaryv1.GetConsistencyProofResponse, error) {
	if err := s.allow(ctx); err != nil {
		return nil, err
	}
	size := uint64(s.n.Checkpoint().Size)
	if req.GetOldSize() > req.GetNewSize() || req.GetNewSize() > size {
		return nil, status.Errorf(codes.InvalidArgument, "consistency proof %d → %d: want old ≤ new ≤ %d", req.GetOldSize(), req.GetNewSize(), size)
	}
	p, err := s.n.Ledger().ProveTree(int64(req.GetNewSize()), int64(req.GetOldSize()))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &notaryv1.GetConsistencyProofResponse{}
	for _, h := range p {
		resp.Proof = append(resp.Proof, bytes.Clone(h[:]))
	}
	return resp, nil
}
