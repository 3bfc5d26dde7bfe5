package target

import (
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

func (c sharedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*preEncoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(p.b)}, nil
	}
	return c.base.Marshal(v)
}

func (c sharedCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }

func (c sharedCodec) Name() string { return c.base.Name() }

// GRPCServerOption returns the option that lets this target send a
// commit's notification, encoded once, to every stream that selects the
// same changes. Pass it to the grpc.Server the target is registered on;
// without it the target encodes per stream.
func (s *Server) GRPCServerOption() grpc.ServerOption {
	s.shared.Store(true)
	return grpc.ForceServerCodecV2(sharedCodec{base: encoding.GetCodecV2(proto.Name)})
}
