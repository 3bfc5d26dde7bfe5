// Package timeslice asks the kernel to run every thread of this process
// with a shorter time slice than its default.
//
// Why: on a small node a Set's thread comes back from its fdatasync, or
// is woken by the network poller, while other threads of the same
// niceness run on both cores; the kernel's EEVDF scheduler lets a waking
// thread run at once only when its deadline is earlier than the running
// thread's, and a thread's deadline is its slice away. With the default
// slice (about 1.4 ms here) that wait was the tail of a single-leaf Set
// under readers; with a 0.1 ms slice the waking thread goes first.
// Linux 6.12 and later take a slice per thread from sched_setattr's
// sched_runtime for the fair class and clone it into the threads a thread
// starts, so setting every thread that exists covers those the Go runtime
// starts later.
package timeslice

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Min and Max are the bounds the kernel clamps a slice to; Default is
// the daemon's (--time-slice): the shortest, which took the p99 of a
// single-leaf Set under ten abusive readers from 1.9-2.5 times its idle
// p99 to 1.4-1.8 times (BENCHMARKS.md, "Readers never hold up writers").
const (
	Min     = 100 * time.Microsecond
	Max     = 100 * time.Millisecond
	Default = Min
)

// ErrUnsupported is returned when the kernel does not take a slice per
// thread (older than Linux 6.12) or refuses to set one.
var ErrUnsupported = errors.New("per-thread time slices not supported")

// schedAttr is the kernel's struct sched_attr (SCHED_ATTR_SIZE_VER1).
type schedAttr struct {
	size     uint32
	policy   uint32
	flags    uint64
	nice     int32
	priority uint32
	runtime  uint64
	deadline uint64
	period   uint64
	utilMin  uint32
	utilMax  uint32
}

// Apply sets the slice of every thread of the process to d (0: the
// kernel's default) and returns how many threads it set. Threads in a
// real-time or deadline policy are left alone. It lists the threads again
// until a pass finds none it has not set, so a thread started meanwhile
// from one not yet set is not missed.
func Apply(d time.Duration) (int, error) {
	if d != 0 && (d < Min || d > Max) {
		return 0, fmt.Errorf("set time slice %s: outside %s-%s", d, Min, Max)
	}
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		tids, err := threads()
		if err != nil {
			return len(done), fmt.Errorf("set time slice: %w", err)
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			err := setThread(tid, d)
			switch {
			case errors.Is(err, unix.ESRCH): // gone meanwhile
			case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
				return len(done), fmt.Errorf("set time slice of thread %d: %w: %w", tid, ErrUnsupported, err)
			case err != nil:
				return len(done), fmt.Errorf("set time slice of thread %d: %w", tid, err)
			}
			done[tid] = true
		}
		if fresh == 0 {
			break
		}
	}
	// A kernel before 6.12 takes the call and ignores the slice; where it
	// reports slices, check that this thread has it.
	if got, ok := Of(unix.Gettid()); ok && d != 0 && got != d {
		return len(done), fmt.Errorf("set time slice %s: the kernel reports %s: %w", d, got, ErrUnsupported)
	}
	return len(done), nil
}

// threads lists the process's thread ids.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// setThread gives thread tid slice d, keeping its policy and niceness.
func setThread(tid int, d time.Duration) error {
	var a schedAttr
	if _, _, e := unix.Syscall6(unix.SYS_SCHED_GETATTR, uintptr(tid), uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a), 0, 0, 0); e != 0 {
		return e
	}
	if a.policy != unix.SCHED_NORMAL && a.policy != unix.SCHED_BATCH && a.policy != unix.SCHED_IDLE {
		return nil // real-time or deadline: no fair slice to set
	}
	a.size = uint32(unsafe.Sizeof(a))
	a.flags &^= unix.SCHED_FLAG_UTIL_CLAMP_MIN | unix.SCHED_FLAG_UTIL_CLAMP_MAX // keep the clamps as they are
	a.runtime, a.deadline, a.period = uint64(d.Nanoseconds()), 0, 0
	if _, _, e := unix.Syscall(unix.SYS_SCHED_SETATTR, uintptr(tid), uintptr(unsafe.Pointer(&a)), 0); e != 0 {
		return e
	}
	return nil
}

// Of returns thread tid's slice as the kernel reports it in
// /proc/self/task/TID/sched (a debug file some kernels leave out: ok is
// false then).
func Of(tid int) (d time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/sched")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		name, val, found := strings.Cut(line, ":")
		if !found || strings.TrimSpace(name) != "se.slice" {
			continue
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, false
		}
		return time.Duration(ns), true
	}
	return 0, false
}
