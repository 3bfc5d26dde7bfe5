package target

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// slotRead is a read past busyAfter whose check has taken the free
// busy-read slot. It runs on the read's own goroutine, so it reports
// with t.Error only.
func slotRead(t *testing.T) *readCost {
	t.Helper()
	c := &readCost{ctx: context.Background(), busy: make(chan struct{}, 1), gate: newWriteGate(), lim: Limits{}.withDefaults(), work: busyAfter}
	if err := c.check(); err != nil || !c.held {
		t.Errorf("the read did not take the free slot: %v", err)
	}
	return c
}

// baseNice is the niceness of a fresh thread of this process; it skips
// the test when there is no room below it.
func baseNice(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := getThreadNice()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 19 {
		t.Skipf("the test runs at niceness %d: no room to lower a thread", n)
	}
	return n
}

// TestBigReadLowersItsThread: a read that takes a busy-read slot runs on
// a thread readNice below the daemon's until it releases the slot, and
// the thread is back at the daemon's niceness after.
func TestBigReadLowersItsThread(t *testing.T) {
	base := baseNice(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := slotRead(t)
		// The goroutine is locked to its thread while lowered, so the
		// thread read here is the read's.
		if n, err := getThreadNice(); err != nil || n != min(19, base+readNice) {
			t.Errorf("holding the slot: niceness %d (%v), want %d", n, err, min(19, base+readNice))
		}
		if err := c.check(); err != nil { // another check changes nothing
			t.Error(err)
		}
		c.release()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		want := base
		if c.low.stuck {
			// No right to raise a thread (TestUnraisedThreadEndsWithItsRead).
			t.Log("the test may not raise a thread's priority: the thread stays low")
			want = min(19, base+readNice)
		}
		if n, err := getThreadNice(); err != nil || n != want {
			t.Errorf("after release: niceness %d (%v), want %d", n, err, want)
		}
	}()
	<-done
}

// TestKeptSlotStillRaisesThread: a Get that passes its slot on to the
// transport (keepForSend) raises its thread back when it returns.
func TestKeptSlotStillRaisesThread(t *testing.T) {
	base := baseNice(t)
	c := &readCost{ctx: context.Background(), busy: make(chan struct{}, 1), gate: newWriteGate(),
		clock: systemClock{}, lim: Limits{}.withDefaults(), work: busyAfter}
	var n int
	var err error
	var stuck bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err = c.check(); err != nil {
			return
		}
		turn := c.keepForSend(newSentPool(nil))
		c.release()
		defer turn.end()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		stuck = c.low.stuck
		n, err = getThreadNice()
	}()
	<-done
	if stuck {
		t.Skip("the test may not raise a thread's priority")
	}
	if err != nil || n != base {
		t.Errorf("after the Get returned: niceness %d (%v), want %d", n, err, base)
	}
}

// TestUnraisedThreadEndsWithItsRead: without the right to raise a thread
// back (no CAP_SYS_NICE), the lowered thread stays locked to the read's
// goroutine and ends with it: no other goroutine ever runs on it.
func TestUnraisedThreadEndsWithItsRead(t *testing.T) {
	base := baseNice(t)
	saved := threadNice
	t.Cleanup(func() { threadNice = saved })
	threadNice.set = func(n int) error {
		if n < min(19, base+readNice) {
			return unix.EPERM
		}
		return setThreadNice(n)
	}
	var tid int
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := slotRead(t)
		tid = unix.Gettid()
		c.release()
		if !c.low.stuck {
			t.Error("a refused raise was not recorded")
		}
		// Still locked: the thread read is the lowered one.
		if n, err := getThreadNice(); err != nil || n != min(19, base+readNice) {
			t.Errorf("after a refused raise: niceness %d (%v), want it left at %d", n, err, min(19, base+readNice))
		}
		// The next slot on the same read reuses the low thread as it is.
		c.busy <- struct{}{}
		c.held = true
		c.low.lower()
		c.release()
		if unix.Gettid() != tid {
			t.Error("the read's goroutine left its lowered thread")
		}
	}()
	<-done
	// The goroutine ended locked, so its thread ended with it: none of
	// many goroutines after runs on it, and each runs at the base.
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if unix.Gettid() == tid {
				t.Errorf("thread %d, left low, ran another goroutine", tid)
			}
			if n, err := getThreadNice(); err != nil || n != base {
				t.Errorf("a later goroutine's thread: niceness %d (%v), want %d", n, err, base)
			}
		}()
	}
	wg.Wait()
}
