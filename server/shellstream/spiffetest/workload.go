package spiffetest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// WorkloadAPI is a Workload API server for one workload identity.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	a    *Authority
	id   spiffeid.ID
	ttl  time.Duration
	srv  *grpc.Server
	dir  string
	addr string

	// Delay is added to each ValidateJWTSVID (a slower agent).
	Delay atomic.Int64

	validateCalls atomic.Uint64
	mu            sync.Mutex
	unavailable   bool
}

// StartWorkloadAPI serves the Workload API for a workload with identity
// id on a unix socket in a fresh temporary directory.
func StartWorkloadAPI(a *Authority, id spiffeid.ID) (*WorkloadAPI, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("kedge-wlapi-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("start workload api: %w", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start workload api: %w", err)
	}
	w := &WorkloadAPI{a: a, id: id, ttl: time.Hour, srv: grpc.NewServer(), dir: dir, addr: "unix://" + sock}
	workload.RegisterSpiffeWorkloadAPIServer(w.srv, w)
	go w.srv.Serve(ln)
	return w, nil
}

// Addr is the socket address for workloadapi.WithAddr.
func (w *WorkloadAPI) Addr() string { return w.addr }

// Close stops the server and removes its socket.
func (w *WorkloadAPI) Close() {
	w.srv.Stop()
	os.RemoveAll(w.dir)
}

// ValidateCalls counts ValidateJWTSVID calls.
func (w *WorkloadAPI) ValidateCalls() uint64 { return w.validateCalls.Load() }

// SetUnavailable makes ValidateJWTSVID answer Unavailable (an agent that
// cannot reach its server) until called with false.
func (w *WorkloadAPI) SetUnavailable(v bool) {
	w.mu.Lock()
	w.unavailable = v
	w.mu.Unlock()
}

func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	svid, err := w.a.X509SVID(w.id, w.ttl)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := stream.Send(&workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: w.id.String(), X509Svid: svid.Certificates[0].Raw, X509SvidKey: key, Bundle: w.a.caCert.Raw}}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (w *WorkloadAPI) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	if err := stream.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{w.a.TD.IDString(): w.a.caCert.Raw}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (w *WorkloadAPI) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if err := checkHeader(ctx); err != nil {
		return nil, err
	}
	if len(req.GetAudience()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	tok, err := w.a.JWTSVID(Claims{Subject: w.id, Audience: req.GetAudience()})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: w.id.String(), Svid: tok}}}, nil
}

func (w *WorkloadAPI) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	jwks, err := w.a.JWTBundle().Marshal()
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := stream.Send(&workload.JWTBundlesResponse{Bundles: map[string][]byte{w.a.TD.IDString(): jwks}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (w *WorkloadAPI) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	if err := checkHeader(ctx); err != nil {
		return nil, err
	}
	w.validateCalls.Add(1)
	if d := time.Duration(w.Delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	w.mu.Lock()
	down := w.unavailable
	w.mu.Unlock()
	if down {
		return nil, status.Error(codes.Unavailable, "agent cannot reach its server")
	}
	if req.GetAudience() == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	svid, err := jwtsvid.ParseAndValidate(req.GetSvid(), jwtbundle.NewSet(w.a.JWTBundle()), []string{req.GetAudience()})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}
