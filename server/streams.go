package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
)

// streams tracks open streaming RPCs (Subscribe) so that shutdown can end
// them at once: GracefulStop waits for every RPC, and a STREAM
// subscription never finishes by itself, so without this every shutdown
// with a subscriber attached would sit out the whole grace period.
type streams struct {
	mu      sync.Mutex
	next    uint64
	cancels map[uint64]context.CancelFunc
	closed  bool
}

func newStreams() *streams { return &streams{cancels: map[uint64]context.CancelFunc{}} }

// interceptor gives each stream a context that cancelAll can end.
func (s *streams) interceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
	} else {
		id := s.next
		s.next++
		s.cancels[id] = cancel
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.cancels, id)
			s.mu.Unlock()
		}()
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// cancelAll ends every open stream and every stream opened later.
func (s *streams) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.cancels {
		c()
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
