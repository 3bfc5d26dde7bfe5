package tree

import "errors"

// Sentinels that callers branch on with errors.Is; every *Error wraps one.
var (
	ErrUnknownPath = errors.New("unknown path")   // no such schema node
	ErrBadPath     = errors.New("malformed path") // keys missing, extra or unparsable
	ErrBadValue    = errors.New("invalid value")  // wrong type, range, pattern, JSON
	ErrNotFound    = errors.New("not found")      // valid path with no data
	ErrMandatory   = errors.New("missing mandatory leaf")
	ErrLeafref     = errors.New("leafref violation")
	ErrKeyLeaf     = errors.New("list key leaf") // deleting or changing a key
	ErrReadOnly    = errors.New("read-only (config false) path")
)

// Error is a validation or resolution failure that names the data path and
// the reason. It wraps one of the package sentinels.
type Error struct {
	Path   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error() + ": " + e.Reason
	}
	return e.Err.Error() + " at " + e.Path + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func newErr(sentinel error, path, reason string) *Error {
	return &Error{Path: path, Reason: reason, Err: sentinel}
}
