package route

import "errors"

// Patch is a change to the routes of the desired state the backend holds
// (its last Set's Config with every Patch since applied): Put routes are
// installed or replaced by key, and Del routes removed by key unless a
// Put has the same key. It lets a caller that knows what changed (the
// routes intent following the change feed) program one route of 100,000
// without handing the backend, and the backend walking, all of them.
//
// The caller owns key uniqueness across the whole desired state: a Put
// may not take a key that another desired route, not deleted by the
// same Patch, holds. Two Puts with one key are refused (ErrNoBase), so
// that the caller's full Set reports them.
type Patch struct {
	Put []Route
	Del []Route
}

// ErrNoBase is returned by Patch when the backend cannot apply a change
// to its desired state and the caller must Set the whole Config instead:
// no complete Set yet, the last Set or Patch left items failed (a full Set
// retries them), adopted routes still held, or the kernel changed under
// the backend (someone else's route change, a link event, a lost
// notification). Nothing was changed.
var ErrNoBase = errors.New("no applied state to patch")
