// Package hostlock holds the host-wide locks of a running daemon: one per
// resource that another daemon on the same host could also claim (its
// data dir, its unix socket, the VPP segment, the BPF pin dir, the route
// protocol in a network namespace, a WireGuard device name). A daemon
// takes them all before it touches any dataplane, so a second instance
// pointed at the same resources fails with a *HeldError naming the
// holder (pid, data dir) and changes nothing.
//
// Every lock dies with its process, so kill -9 never leaves one that
// blocks a restart: a flock on an open lock file (File) or directory
// (Dir), or an abstract unix socket in a network namespace (Abstract),
// which has no file to go stale. A lock file left by a killed holder is
// unlocked and is taken over by the next daemon; a lock released cleanly
// removes its file.
package hostlock

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
)

// DataDirLock is the name of the lock file a daemon holds in its data
// dir. It records the holder's pid and data dir, which is also how
// Describe finds the data dir of a pid holding some other lock.
const DataDirLock = "kedge.lock"

// ErrHeld marks a lock another process holds (see HeldError).
var ErrHeld = errors.New("held by another process")

// Holder identifies the process holding a lock.
type Holder struct {
	// PID is the holder's process id; 0 when it is not visible here (not
	// permitted, or in a pid namespace this process cannot see).
	PID int `json:"pid"`
	// DataDir is the holder's data dir, when known.
	DataDir string `json:"data_dir,omitempty"`
	// Program is the holder's command name (/proc/PID/comm), when known.
	Program string `json:"-"`
}

// Self is this process as a holder with the given data dir.
func Self(dataDir string) Holder { return Holder{PID: os.Getpid(), DataDir: dataDir} }

// String reads "pid 1234 (kedge-daemon, data dir /var/lib/kedge)".
func (h Holder) String() string {
	if h.PID <= 0 {
		if h.DataDir != "" {
			return "another process (data dir " + h.DataDir + "; its pid is not visible here)"
		}
		return "another process (its pid is not visible here)"
	}
	var details []string
	if h.Program != "" {
		details = append(details, h.Program)
	}
	if h.DataDir != "" {
		details = append(details, "data dir "+h.DataDir)
	}
	s := "pid " + strconv.Itoa(h.PID)
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	return s
}

// Resource names what a lock guards, for messages.
type Resource struct {
	// Name says which resource, with its path or scope: "BPF pin dir
	// /sys/fs/bpf/kedge", "route protocol 107 in network namespace x".
	Name string
	// Hint says how a second daemon avoids the clash ("give this daemon
	// its own --bpf-pin-dir"); may be empty.
	Hint string
}

// HeldError is a lock another process holds.
type HeldError struct {
	Resource Resource
	Holder   Holder
}

func (e *HeldError) Error() string {
	s := e.Resource.Name + " is held by " + e.Holder.String()
	if e.Resource.Hint != "" {
		s += "; " + e.Resource.Hint
	}
	return s
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is one lock held until Close.
type Lock struct {
	res     Resource
	once    sync.Once
	release func() error
	err     error
}

// Resource is what the lock guards.
func (l *Lock) Resource() Resource { return l.res }

// Close releases the lock (once; later calls return the first result).
func (l *Lock) Close() error {
	l.once.Do(func() {
		if l.release != nil {
			l.err = l.release()
		}
	})
	return l.err
}

// Conflicts is every lock a daemon found held, reported together so one
// failed start names every clash at once.
type Conflicts []error

func (c Conflicts) Error() string {
	msgs := make([]string, len(c))
	for i, e := range c {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is and errors.As see each conflict.
func (c Conflicts) Unwrap() []error { return c }
