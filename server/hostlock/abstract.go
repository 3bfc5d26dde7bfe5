package hostlock

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// abstractPrefix starts the name of every lock socket ("@" makes it
// abstract: it lives in the network namespace, not on a filesystem).
const abstractPrefix = "@kedge-lock/"

// askTimeout bounds how long a contender waits for the holder's record.
const askTimeout = 2 * time.Second

// Abstract takes the abstract unix socket named name in the network
// namespace at nsPath ("" for this process's own). Abstract names are
// per network namespace and vanish with the socket, so this is the lock
// for a resource scoped to a namespace (the route protocol in it): it
// has no file to go stale, and daemons in any container acting on the
// same namespace see each other. The holder answers each connection with
// its record; the contender also gets its pid from SO_PEERCRED. Close
// closes the socket.
func Abstract(nsPath, name string, res Resource, me Holder) (*Lock, error) {
	sa := &unix.SockaddrUnix{Name: abstractPrefix + name}
	for range 3 {
		fd, err := socketIn(nsPath)
		if err != nil {
			return nil, err
		}
		err = unix.Bind(fd, sa)
		if err == nil {
			return serveLock(fd, res, me)
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("bind lock socket %s: %w", sa.Name, err)
		}
		h, err := askHolder(nsPath, sa)
		if err == nil {
			return nil, &HeldError{Resource: res, Holder: h}
		}
		// The holder closed its socket between our bind and connect: try
		// to take it again.
	}
	return nil, fmt.Errorf("bind lock socket %s: held, but its holder does not answer", sa.Name)
}

// serveLock listens on the bound fd and answers each connection with me.
func serveLock(fd int, res Resource, me Holder) (*Lock, error) {
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on lock socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lock socket")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("listen on lock socket: %w", err)
	}
	rec, err := json.Marshal(me)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("encode lock holder: %w", err)
	}
	rec = append(rec, '\n')
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(askTimeout))
			_, _ = c.Write(rec)
			c.Close()
		}
	})
	return &Lock{res: res, release: func() error {
		err := ln.Close()
		wg.Wait()
		return err
	}}, nil
}

// askHolder connects to the held name and reads the holder's record; the
// pid comes from the kernel (SO_PEERCRED), the data dir from the record.
func askHolder(nsPath string, sa *unix.SockaddrUnix) (Holder, error) {
	fd, err := socketIn(nsPath)
	if err != nil {
		return Holder{}, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EAGAIN) {
			// Listening but its backlog is full: held, by someone busy.
			return Holder{}, nil
		}
		return Holder{}, fmt.Errorf("ask lock holder: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lock socket")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return Holder{}, fmt.Errorf("ask lock holder: %w", err)
	}
	defer c.Close()
	var h Holder
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					h = Describe(int(cred.Pid))
				}
			})
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(askTimeout))
	if line, err := bufio.NewReader(c).ReadBytes('\n'); err == nil {
		var rec Holder
		if json.Unmarshal(line, &rec) == nil {
			// The pid stays the kernel's (0 when not visible here).
			h.DataDir = rec.DataDir
		}
	}
	return h, nil
}

// socketIn creates a unix stream socket in the network namespace at
// nsPath ("" for this process's own). Only the socket(2) call needs the
// namespace: a socket keeps the namespace it was created in, and binds
// and connects to abstract names resolve there.
func socketIn(nsPath string) (int, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return -1, fmt.Errorf("create lock socket: %w", err)
		}
		return fd, nil
	}
	if nsPath == "" {
		return open()
	}
	ns, err := os.Open(nsPath)
	if err != nil {
		return -1, fmt.Errorf("open network namespace: %w", err)
	}
	defer ns.Close()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread goes back to the scheduler only once it is back in
		// its own namespace; if it cannot return, it stays locked and
		// ends with this goroutine. (Ending it is not enough by itself:
		// the main thread cannot end and would stay behind in the other
		// namespace, and with it what /proc/self/net shows.)
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{-1, fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer home.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // still home
			done <- result{-1, fmt.Errorf("enter network namespace %s: %w", nsPath, err)}
			return
		}
		fd, err := open()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}
