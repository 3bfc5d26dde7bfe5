package target

import (
	"context"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// preEncoded is a SubscribeResponse marshalled once and sent as is on
// every stream whose subscription selects exactly the same changes. With
// a hundred monitoring clients on the same paths, marshalling each commit
// once instead of once per stream is most of the server's work saved.
type preEncoded struct{ b []byte }

// sharedCodec is gRPC's proto codec that passes preEncoded bytes through.
// The bytes are never written to (SliceBuffer.Free is a no-op), so one
// slice can be queued on many streams at once.
type sharedCodec struct{ base encoding.CodecV2 }

// wireResponse is a Get response written as wire bytes into pooled
// buffers (wire.go); the codec hands them to gRPC, which frees them once
// sent.
type wireResponse struct{ bufs mem.BufferSlice }

// WireEncoded is a message another service (gRIBI's answers) wrote as
// wire bytes itself; the codec sends them as they are. The bytes must not
// change once handed over.
type WireEncoded interface{ WireBytes() []byte }

// WireDecoder is a message that decodes its own wire bytes (gRIBI's
// Modify requests, read straight into the RIB's operations instead of
// through a generated message per entry). The bytes are gRPC's buffers,
// reused once UnmarshalWire returns: it copies what it keeps. Its error
// is the one gRPC reports, as for proto.Unmarshal's.
type WireDecoder interface{ UnmarshalWire(b []byte) error }

func (c sharedCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch p := v.(type) {
	case *preEncoded:
		return mem.BufferSlice{mem.SliceBuffer(p.b)}, nil
	case *wireResponse:
		return p.bufs, nil
	case WireEncoded:
		return mem.BufferSlice{mem.SliceBuffer(p.WireBytes())}, nil
	}
	return c.base.Marshal(v)
}

func (c sharedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(WireDecoder); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return w.UnmarshalWire(buf.ReadOnlyData())
	}
	return c.base.Unmarshal(data, v)
}

func (c sharedCodec) Name() string { return c.base.Name() }

// GRPCServerOption returns the option that lets this target send a
// commit's notification, encoded once, to every stream that selects the
// same changes. Pass it to the grpc.Server the target is registered on;
// without it the target encodes per stream.
func (s *Server) GRPCServerOption() grpc.ServerOption {
	s.shared.Store(true)
	return grpc.ForceServerCodecV2(sharedCodec{base: encoding.GetCodecV2(proto.Name)})
}

// register adds the server to g. With the target's codec in place, Get
// answers with its response already marshalled (see get): the standard
// service description but for Get's handler.
func (s *Server) register(g *grpc.Server) {
	if !s.shared.Load() {
		gpb.RegisterGNMIServer(g, s)
		return
	}
	desc := gpb.GNMI_ServiceDesc
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Get" {
			desc.Methods[i].Handler = s.encodedGet
		}
	}
	g.RegisterService(&desc, s)
}

// encodedGet is the gRPC handler of Get when the shared codec is in place.
func (s *Server) encodedGet(_ any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
	in := new(gpb.GetRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	get := func(ctx context.Context, req any) (any, error) {
		_, b, err := s.get(ctx, req.(*gpb.GetRequest), true)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	if intercept == nil {
		return get(ctx, in)
	}
	return intercept(ctx, in, &grpc.UnaryServerInfo{Server: s, FullMethod: gpb.GNMI_Get_FullMethodName}, get)
}
