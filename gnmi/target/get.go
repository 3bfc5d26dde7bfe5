package target

import (
	"context"
	"fmt"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// gnmiVersion is the version of the gNMI specification served, as the
// proto package declares it.
var gnmiVersion = func() string {
	opts := gpb.File_github_com_openconfig_gnmi_proto_gnmi_gnmi_proto.Options()
	if v, ok := proto.GetExtension(opts, gpb.E_GnmiService).(string); ok && v != "" {
		return v
	}
	return "0.10.0"
}()

var encodings = []gpb.Encoding{gpb.Encoding_JSON, gpb.Encoding_JSON_IETF, gpb.Encoding_PROTO}

// Capabilities reports Kedge's modules, encodings and gNMI version.
func (s *Server) Capabilities(ctx context.Context, _ *gpb.CapabilityRequest) (*gpb.CapabilityResponse, error) {
	if err := s.authRead(ctx); err != nil {
		return nil, err
	}
	resp := &gpb.CapabilityResponse{SupportedEncodings: encodings, GNMIVersion: gnmiVersion}
	for _, m := range s.st.Schema().Modules {
		resp.SupportedModels = append(resp.SupportedModels, &gpb.ModelData{Name: m.Name, Organization: m.Organization, Version: m.Revision})
	}
	return resp, nil
}

func (s *Server) authRead(ctx context.Context) error {
	if s.opts.Auth == nil {
		return status.Error(codes.PermissionDenied, "no authorizer configured")
	}
	if err := s.opts.Auth.Read(ctx); err != nil {
		return authStatus(err)
	}
	return nil
}

// keepFor returns the leaf filter for a gNMI data type.
func keepFor(t gpb.GetRequest_DataType) (func(*tree.Node) bool, error) {
	switch t {
	case gpb.GetRequest_ALL:
		return nil, nil
	case gpb.GetRequest_CONFIG:
		return func(n *tree.Node) bool { return n.Config }, nil
	case gpb.GetRequest_STATE:
		return func(n *tree.Node) bool { return !n.Config }, nil
	case gpb.GetRequest_OPERATIONAL:
		return func(n *tree.Node) bool { return n.IsOperational() }, nil
	}
	return nil, fmt.Errorf("unknown data type %v", t)
}

func checkEncoding(e gpb.Encoding) error {
	for _, ok := range encodings {
		if e == ok {
			return nil
		}
	}
	return status.Errorf(codes.Unimplemented, "encoding %v is not supported (use JSON, JSON_IETF or PROTO)", e)
}

// depthOf reads the depth extension; 0 means unlimited.
func depthOf(exts []*gnmi_ext.Extension) uint32 {
	for _, x := range exts {
		if d := x.GetDepth(); d != nil {
			return d.GetLevel()
		}
	}
	return 0
}

// Get returns the data at each path; a concrete path with no data is
// NotFound, as the specification requires.
func (s *Server) Get(ctx context.Context, req *gpb.GetRequest) (*gpb.GetResponse, error) {
	resp, _, err := s.get(ctx, req, false)
	return resp, err
}

// get serves a Get. With encode set it writes the response straight into
// wire bytes (wire.go) while the read holds its busy-read slot, so that a
// big Get's encoding takes its turn too and leaves no garbage; the gRPC
// server's codec then sends the bytes as they are, and the slot is held
// until gRPC has written them (sendturn.go).
func (s *Server) get(ctx context.Context, req *gpb.GetRequest, encode bool) (*gpb.GetResponse, *wireResponse, error) {
	if err := s.authRead(ctx); err != nil {
		return nil, nil, err
	}
	if err := checkEncoding(req.GetEncoding()); err != nil {
		return nil, nil, err
	}
	keep, err := keepFor(req.GetType())
	if err != nil {
		return nil, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetUseModels()) > 0 {
		if err := s.checkModels(req.GetUseModels()); err != nil {
			return nil, nil, err
		}
	}
	paths := req.GetPath()
	if len(paths) == 0 {
		paths = []*gpb.Path{{}}
	}
	enc := encoder{enc: req.GetEncoding(), keep: keep, depth: depthOf(req.GetExtension())}
	cost := s.newCost(ctx, true)
	defer cost.release()
	var shared elemCache
	resp := &gpb.GetResponse{}
	var wire *wireSink
	var pool *sentPool
	if encode {
		pool = newSentPool(mem.DefaultBufferPool())
		wire = &wireSink{enc: enc, w: &wireBuf{pool: pool}}
	}
	target := req.GetPrefix().GetTarget()
	// The snapshot is the tree as of the last commit: the walk may take
	// as long as its budget allows without holding up a Set.
	err = s.st.Read(func(t *tree.Tree) error {
		ts := s.clock.Now().UnixNano()
		for _, p := range paths {
			elems, err := fullPath(req.GetPrefix(), p)
			if err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			pat, err := tree.CompilePattern(t.Schema(), elems)
			if err != nil {
				return errStatus(err)
			}
			n := &gpb.Notification{Timestamp: ts}
			if target != "" {
				n.Prefix = &gpb.Path{Target: target}
			}
			var sink updateSink = &msgSink{enc: enc, elems: &shared, add: func(u *gpb.Update) { n.Update = append(n.Update, u) }}
			at := 0
			if wire != nil {
				sink, at = wire, wire.w.mark()
			}
			err = t.WalkPattern(pat, tree.WalkOpts{Visit: cost.visited}, func(m tree.Match) error {
				return enc.each(m, cost.leaf, sink)
			})
			cost.endWalk()
			if err != nil {
				return errStatus(err)
			}
			count := len(n.Update)
			if wire != nil {
				count = wire.count
			}
			if count == 0 && !hasWildcard(elems) {
				return status.Errorf(codes.NotFound, "no data at %s", pathString(elems))
			}
			if wire != nil {
				wire.notification(at, ts, target)
			} else {
				resp.Notification = append(resp.Notification, n)
			}
		}
		return nil
	})
	if err == nil && wire != nil {
		err = cost.beforeSend()
	}
	if err != nil {
		if wire != nil {
			wire.w.free()
		}
		return nil, nil, err
	}
	if wire != nil {
		// A big Get keeps its slot until gRPC has written the response
		// (sendturn.go).
		cost.keepForSend(pool)
		bufs := wire.w.bytes()
		pool.handOver()
		return nil, &wireResponse{bufs: bufs}, nil
	}
	return resp, nil, nil
}

func (s *Server) checkModels(models []*gpb.ModelData) error {
	for _, want := range models {
		found := false
		for _, m := range s.st.Schema().Modules {
			if m.Name == want.GetName() && (want.GetVersion() == "" || want.GetVersion() == m.Revision) {
				found = true
			}
		}
		if !found {
			return status.Errorf(codes.InvalidArgument, "model %s %s is not supported", want.GetName(), want.GetVersion())
		}
	}
	return nil
}
