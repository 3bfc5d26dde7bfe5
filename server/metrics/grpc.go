package metrics

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// gnmiService is the gNMI service's full name: only its RPCs are counted
// here (Shellstream reports its own through Transit).
const gnmiService = "/gnmi.gNMI/"

// gnmiMethod returns the method name of a gNMI RPC ("" for another
// service's).
func gnmiMethod(full string) string {
	m, ok := strings.CutPrefix(full, gnmiService)
	if !ok {
		return ""
	}
	return m
}

// UnaryInterceptor counts unary gNMI RPCs by method and code and times
// them; an accepted Set is also a commit. Put it first in the chain so
// that refusals by the interceptors after it (authentication) count too.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := gnmiMethod(info.FullMethod)
	if method == "" {
		return h(ctx, req)
	}
	start := time.Now()
	resp, err := h(ctx, req)
	took := time.Since(start).Seconds()
	code := status.Code(err)
	m.rpcs.WithLabelValues(method, code.String()).Inc()
	m.rpcSeconds.WithLabelValues(method).Observe(took)
	if method == "Set" && err == nil {
		m.commit.Observe(took)
	}
	return resp, err
}

// StreamInterceptor counts streaming gNMI RPCs (Subscribe) by method and
// code when they end, and keeps the number of open Subscribe streams.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	method := gnmiMethod(info.FullMethod)
	if method == "" {
		return h(srv, ss)
	}
	if method == "Subscribe" {
		m.subscribers.Inc()
		defer m.subscribers.Dec()
	}
	err := h(srv, ss)
	m.rpcs.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}
