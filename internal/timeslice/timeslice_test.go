package timeslice

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestApplyCoversEveryThread: after Apply every thread of the process,
// and every thread the runtime starts afterwards, has the slice; Apply(0)
// puts the default back.
func TestApplyCoversEveryThread(t *testing.T) {
	def, ok := Of(unix.Gettid())
	if !ok {
		t.Skip("this kernel does not report se.slice in /proc/self/task/TID/sched")
	}
	const want = 300 * time.Microsecond
	if def == want {
		t.Fatalf("the default slice is already %s: pick another", want)
	}
	n, err := Apply(want)
	if err != nil {
		t.Skipf("per-thread slices not available here: %v", err)
	}
	t.Cleanup(func() {
		if _, err := Apply(0); err != nil {
			t.Errorf("put the default back: %v", err)
		}
	})
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	if n < len(tids) {
		t.Errorf("Apply set %d threads, the process has %d", n, len(tids))
	}
	for _, tid := range tids {
		if d, ok := Of(tid); ok && d != want {
			t.Errorf("thread %d: slice %s, want %s", tid, d, want)
		}
	}
	// Threads started afterwards: goroutines locked to their threads,
	// each holding it until released, force the runtime to start new ones.
	const extra = 8
	got := make(chan int)
	release := make(chan struct{})
	for range extra {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			got <- unix.Gettid()
			<-release
		}()
	}
	before := map[int]bool{}
	for _, tid := range tids {
		before[tid] = true
	}
	started := 0
	for range extra {
		tid := <-got
		if !before[tid] {
			started++
		}
		if d, ok := Of(tid); ok && d != want {
			t.Errorf("thread %d (started after Apply: %v): slice %s, want %s", tid, !before[tid], d, want)
		}
	}
	close(release)
	if started == 0 {
		t.Errorf("no new thread was started: the inheritance went untested")
	}
	if _, err := Apply(0); err != nil {
		t.Fatal(err)
	}
	if d, _ := Of(unix.Gettid()); d != def {
		t.Errorf("after Apply(0): slice %s, want the default %s", d, def)
	}
}

func TestApplyRefusesOutOfRange(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, 99 * time.Microsecond, 101 * time.Millisecond, -time.Millisecond} {
		if n, err := Apply(d); err == nil || n != 0 {
			t.Errorf("Apply(%s) = %d, %v; want a refusal that sets nothing", d, n, err)
		}
	}
}
