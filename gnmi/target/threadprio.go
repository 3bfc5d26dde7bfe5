package target

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// A big read runs on a thread the kernel ranks below the daemon's other
// threads. Go's scheduler sees only its own processors: the step-aside
// (writegate.go) frees one for a Set's goroutine, but the thread that
// comes back from the Set's fdatasync, or that the network poller wakes
// for its request, still waits for the kernel to give it a core, and with
// both cores running readers at the same niceness that wait (up to a
// time slice, 1.4 ms here) was most of the readers' Set p99. Lowered by
// readNice, the reader's thread gives way: side by side (BENCHMARKS.md,
// "Big reads on a lowered thread") the readers' Set p99 halved.

// readNice is how much lower than the daemon's own niceness the thread
// under a big read runs.
const readNice = 10

// threadNice reads and sets the calling thread's niceness; tests replace
// set to fail.
var threadNice = struct {
	get func() (int, error)
	set func(int) error
}{getThreadNice, setThreadNice}

func getThreadNice() (int, error) {
	// The raw syscall answers 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		return 0, fmt.Errorf("read thread niceness: %w", err)
	}
	return 20 - p, nil
}

func setThreadNice(n int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), n); err != nil {
		return fmt.Errorf("set thread niceness %d: %w", n, err)
	}
	return nil
}

// lowThread is one read's hold on a lowered thread. A goroutine's thread
// is lowered only while it is locked to it, so that no other goroutine
// runs there; raising it back needs CAP_SYS_NICE (or RLIMIT_NICE), and a
// thread that cannot be raised back stays locked to its goroutine and
// ends with it (Go ends a thread whose goroutine exits locked), so a
// lowered thread never serves anything but big reads.
type lowThread struct {
	on    bool // the thread is lowered for this read now
	stuck bool // the thread could not be raised back: it stays locked and low
	base  int  // the thread's niceness before
}

// lower locks the goroutine to its thread and lowers the thread; if the
// kernel refuses, the read runs as it is.
func (l *lowThread) lower() {
	if l.on {
		return
	}
	if l.stuck {
		l.on = true
		return
	}
	runtime.LockOSThread()
	base, err := threadNice.get()
	if err == nil && base < 19 {
		err = threadNice.set(min(19, base+readNice))
	}
	if err != nil || base >= 19 {
		runtime.UnlockOSThread()
		return
	}
	l.on, l.base = true, base
}

// restore raises the thread back and unlocks it; a thread that cannot be
// raised stays locked and low (see lowThread).
func (l *lowThread) restore() {
	if !l.on {
		return
	}
	l.on = false
	if l.stuck {
		return
	}
	if err := threadNice.set(l.base); err != nil {
		l.stuck = true
		return
	}
	runtime.UnlockOSThread()
}
