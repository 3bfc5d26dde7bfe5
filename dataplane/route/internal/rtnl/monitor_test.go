package rtnl

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadsInPoll counts this process's threads blocked in poll(2) or
// ppoll(2), from /proc/self/task/*/syscall (the number of the call a
// blocked thread is in).
func threadsInPoll(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/syscall")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		switch strings.Fields(string(b))[0] {
		case "7", "271": // SYS_POLL, SYS_PPOLL on amd64
			n++
		}
	}
	return n
}

// TestWaitChanges: the monitor's wait times out quietly, wakes for another
// actor's change without consuming it, and waits in the runtime's poller,
// not in a thread blocked in poll(2), which would hold one of the
// daemon's processors for its whole wait.
func TestWaitChanges(t *testing.T) {
	if unix.SYS_POLL != 7 || unix.SYS_PPOLL != 271 {
		t.Skip("the poll system call numbers checked are amd64's")
	}
	ns := testNS(t)
	c := openNS(t, ns)
	if ready, err := c.WaitChanges(20 * time.Millisecond); ready || err != nil {
		t.Fatalf("quiet namespace: WaitChanges = %t, %v; want false, nil", ready, err)
	}
	before := threadsInPoll(t)
	type result struct {
		ready bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		ready, err := c.WaitChanges(10 * time.Second)
		done <- result{ready, err}
	}()
	// The waiter is parked well within this; a poll(2) would show.
	time.Sleep(200 * time.Millisecond)
	if n := threadsInPoll(t); n > before {
		t.Errorf("%d threads in poll(2) while WaitChanges waits (%d before): the wait holds a thread and its processor", n, before)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "wcA", "type", "veth", "peer", "name", "wcB").CombinedOutput(); err != nil {
		t.Fatalf("add veth: %v: %s", err, out)
	}
	select {
	case r := <-done:
		if !r.ready || r.err != nil {
			t.Fatalf("after a link was added: WaitChanges = %t, %v; want true, nil", r.ready, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitChanges did not return after a link was added")
	}
	// Not consumed: still ready, and Changes reads it.
	if ready, err := c.WaitChanges(0); !ready || err != nil {
		t.Fatalf("WaitChanges(0) after the wake = %t, %v; want true, nil", ready, err)
	}
	links := 0
	if _, err := c.Changes(func(e Event) {
		if e.Type == unix.RTM_NEWLINK && strings.HasPrefix(e.Name, "wc") {
			links++
		}
	}); err != nil {
		t.Fatalf("changes: %v", err)
	}
	if links == 0 {
		t.Error("Changes did not report the new links")
	}
	if ready, err := c.WaitChanges(0); ready || err != nil {
		t.Errorf("WaitChanges(0) after Changes drained = %t, %v; want false, nil", ready, err)
	}
}
