package target

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// code maps store and tree errors to the gRPC code a client should see.
func code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, ErrPermissionDenied):
		return codes.PermissionDenied
	case errors.Is(err, tree.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, tree.ErrUnknownPath), errors.Is(err, tree.ErrBadPath),
		errors.Is(err, tree.ErrBadValue), errors.Is(err, tree.ErrKeyLeaf),
		errors.Is(err, tree.ErrReadOnly):
		return codes.InvalidArgument
	case errors.Is(err, tree.ErrMandatory), errors.Is(err, tree.ErrLeafref), errors.Is(err, tree.ErrRule):
		return codes.FailedPrecondition
	case errors.Is(err, store.ErrClosed):
		return codes.Unavailable
	case errors.Is(err, store.ErrNoSpace):
		return codes.ResourceExhausted
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// errStatus turns an error into a gRPC status error with its mapped code.
func errStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(code(err), err.Error())
}

// authStatus maps an Authorizer error; anything not recognised is a
// denial, never a success.
func authStatus(err error) error {
	if errors.Is(err, ErrUnauthenticated) {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	return status.Error(codes.PermissionDenied, err.Error())
}

// errorReason is the google.rpc.ErrorInfo reason of a failed Set: a
// semantic rule's own stable reason, else the code's name.
func errorReason(err error, c codes.Code) string {
	var re *tree.RuleError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	return c.String()
}

// errorPath is the data path a failed operation names, if any.
func errorPath(err error) (string, bool) {
	if te, ok := asTreeErr(err); ok {
		return te.Path, true
	}
	var re *tree.RuleError
	if errors.As(err, &re) {
		return re.Path, true
	}
	return "", false
}
