package target

import (
	"context"
	"errors"
	"fmt"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// setOp is one operation of a SetRequest in the specification's order
// (deletes, then replaces, then updates), with its position for results.
type setOp struct {
	kind  gpb.UpdateResult_Operation
	elems []*gpb.PathElem
	path  *gpb.Path
	val   *gpb.TypedValue
}

// Set applies a SetRequest all or nothing. An operation that fails
// aborts the whole request: the RPC status is Aborted, its message names
// the operation, path and reason, and its details carry the failing
// operation's own code (InvalidArgument, NotFound, FailedPrecondition…)
// so clients can branch on it. Nothing is changed.
func (s *Server) Set(ctx context.Context, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	s.gate.begin() // big reads step aside (writegate.go)
	defer s.gate.end()
	if s.opts.Auth == nil {
		return nil, status.Error(codes.PermissionDenied, "no authorizer configured")
	}
	if len(req.GetUnionReplace()) > 0 {
		return nil, status.Error(codes.Unimplemented, "union_replace is not supported; use replace")
	}
	ops, err := setOps(req)
	if err != nil {
		return nil, err
	}
	commit, err := commitExt(req)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(ops))
	for i, op := range ops {
		paths[i] = pathString(op.elems)
	}
	// Confirm, cancel and set_rollback_duration carry no paths: the
	// confirmer asks ResolvePending about the pending commit itself.
	if err := s.opts.Auth.Write(ctx, paths); err != nil {
		return nil, authStatus(err)
	}
	sops := make([]store.Op, len(ops))
	for i, op := range ops {
		sops[i] = store.Op{Kind: storeKind(op.kind), Path: op.elems, Val: op.val}
	}
	check := func(p store.Proposed) error { return s.opts.Auth.WriteChanges(ctx, p) }
	var c *store.Commit
	if commit != nil {
		c, err = s.cc.handle(ctx, commit, sops, caller{check: check, owner: s.opts.Auth.Principal(ctx),
			resolve: func(owner string, paths []string) error { return s.opts.Auth.ResolvePending(ctx, owner, paths) }})
	} else {
		c, err = s.cc.plainSet(ctx, sops, check)
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		if errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnauthenticated) {
			return nil, authStatus(err)
		}
		return nil, abortStatus(err, ops)
	}
	resp := &gpb.SetResponse{Timestamp: c.Time.UnixNano(), Prefix: req.GetPrefix()}
	for _, op := range ops {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: op.path, Op: op.kind})
	}
	return resp, nil
}

func storeKind(k gpb.UpdateResult_Operation) store.OpKind {
	switch k {
	case gpb.UpdateResult_DELETE:
		return store.OpDelete
	case gpb.UpdateResult_REPLACE:
		return store.OpReplace
	}
	return store.OpUpdate
}

// setOps validates the request's paths and orders its operations.
func setOps(req *gpb.SetRequest) ([]setOp, error) {
	var ops []setOp
	add := func(kind gpb.UpdateResult_Operation, p *gpb.Path, v *gpb.TypedValue) error {
		elems, err := fullPath(req.GetPrefix(), p)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "%v %s: %v", kind, pathString(p.GetElem()), err)
		}
		if hasWildcard(elems) {
			return status.Errorf(codes.InvalidArgument, "%v %s: wildcards are not allowed in Set", kind, pathString(elems))
		}
		if kind != gpb.UpdateResult_DELETE && v == nil {
			return status.Errorf(codes.InvalidArgument, "%v %s: no value", kind, pathString(elems))
		}
		ops = append(ops, setOp{kind: kind, elems: elems, path: p, val: v})
		return nil
	}
	for _, p := range req.GetDelete() {
		if err := add(gpb.UpdateResult_DELETE, p, nil); err != nil {
			return nil, err
		}
	}
	for _, u := range req.GetReplace() {
		if err := add(gpb.UpdateResult_REPLACE, u.GetPath(), u.GetVal()); err != nil {
			return nil, err
		}
	}
	for _, u := range req.GetUpdate() {
		if err := add(gpb.UpdateResult_UPDATE, u.GetPath(), u.GetVal()); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// abortStatus builds the Aborted status for a failed transaction, with
// the failing operation's own code in the details.
func abortStatus(err error, ops []setOp) error {
	c := code(err)
	if c == codes.Unavailable || c == codes.Canceled || c == codes.DeadlineExceeded || c == codes.Internal || c == codes.ResourceExhausted {
		return status.Error(c, err.Error())
	}
	failed := "transaction"
	if at, ok := errorPath(err); ok {
		for _, op := range ops {
			if p := pathString(op.elems); len(at) >= len(p) && at[:len(p)] == p {
				failed = fmt.Sprintf("%v %s", op.kind, p)
			}
		}
	}
	st := status.New(codes.Aborted, fmt.Sprintf("set aborted, nothing changed: %s failed (%v): %v", failed, c, err))
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   errorReason(err, c),
		Domain:   "kedge",
		Metadata: map[string]string{"operation": failed, "code": fmt.Sprint(int32(c))},
	}); derr == nil {
		st = d
	}
	return st.Err()
}

func asTreeErr(err error) (*tree.Error, bool) {
	var te *tree.Error
	ok := errors.As(err, &te)
	return te, ok
}
