// Package nsthread is the one place wgmesh changes an OS thread's network
// namespace. A Thread is a goroutine locked to an OS thread that has entered a
// namespace once and then runs functions on request, so sockets, TUN devices
// and netlink handles it creates belong to that namespace no matter which
// goroutine asked for them.
package nsthread

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("namespace thread closed")

// Thread runs functions inside one network namespace. The zero path means
// "the caller's namespace": Do then runs the function on the calling goroutine.
// A Thread is safe for concurrent use; calls are serialised.
type Thread struct {
	path string
	reqs chan request
	done chan struct{}
	once sync.Once
}

type request struct {
	fn  func() error
	out chan error
}

// Start enters the network namespace at path (e.g. /var/run/netns/x) on a
// fresh locked OS thread. An empty path returns a Thread that runs functions
// in place.
func Start(path string) (*Thread, error) {
	t := &Thread{path: path, done: make(chan struct{})}
	if path == "" {
		return t, nil
	}
	t.reqs = make(chan request)
	ready := make(chan error, 1)
	go t.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return t, nil
}

// Path is the namespace path the Thread was started with ("" for in place).
func (t *Thread) Path() string { return t.path }

func (t *Thread) loop(ready chan<- error) {
	// The thread is never unlocked: when this goroutine returns, the Go
	// runtime destroys the thread instead of reusing it in a foreign
	// namespace. Threads the runtime starts while this one is locked come from
	// its template thread, so they do not inherit the namespace.
	runtime.LockOSThread()
	fd, err := unix.Open(t.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ready <- fmt.Errorf("open netns %s: %w", t.path, err)
		return
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		ready <- fmt.Errorf("enter netns %s: %w", t.path, err)
		return
	}
	ready <- nil
	for {
		select {
		case r := <-t.reqs:
			r.out <- r.fn()
		case <-t.done:
			return
		}
	}
}

// Do runs fn inside the namespace and returns its error.
func (t *Thread) Do(fn func() error) error {
	if t.path == "" {
		return fn()
	}
	r := request{fn: fn, out: make(chan error, 1)}
	select {
	case t.reqs <- r:
		return <-r.out
	case <-t.done:
		return ErrClosed
	}
}

// Close stops the thread. Objects created through Do stay valid.
func (t *Thread) Close() {
	t.once.Do(func() { close(t.done) })
}
