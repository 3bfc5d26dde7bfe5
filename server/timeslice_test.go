package server

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/internal/timeslice"
	"golang.org/x/sys/unix"
)

// The daemon's start asks for its configured time slice on every thread
// and says so; 0 leaves the kernel's default.
func TestDaemonSetsTimeSlice(t *testing.T) {
	if _, ok := timeslice.Of(unix.Gettid()); !ok {
		t.Skip("this kernel does not report se.slice in /proc/self/task/TID/sched")
	}
	if _, err := timeslice.Apply(250 * time.Microsecond); err != nil {
		t.Skipf("per-thread slices not available here: %v", err)
	}
	t.Cleanup(func() {
		if _, err := timeslice.Apply(0); err != nil {
			t.Errorf("put the default back: %v", err)
		}
	})
	start := func(slice time.Duration) string {
		t.Helper()
		c := testConfig(t)
		c.TimeSlice = slice
		var logs bytes.Buffer
		d, err := Start(c, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		d.Shutdown(time.Second)
		return logs.String()
	}
	logs := start(200 * time.Microsecond)
	if !strings.Contains(logs, "msg=\"time slice\" slice=200µs threads=") {
		t.Errorf("start log lacks the time slice:\n%s", logs)
	}
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if got, ok := timeslice.Of(tid); ok && got != 200*time.Microsecond {
			t.Errorf("thread %d: slice %s after a start with --time-slice 200us", tid, got)
		}
	}
	// 0: the daemon leaves the slice alone (here the test's 250us stays
	// off: it was replaced by the start above, so set it again).
	if _, err := timeslice.Apply(250 * time.Microsecond); err != nil {
		t.Fatal(err)
	}
	logs = start(0)
	if !strings.Contains(logs, "slice=\"kernel default\"") {
		t.Errorf("start log lacks the kernel default:\n%s", logs)
	}
	if got, _ := timeslice.Of(unix.Gettid()); got != 250*time.Microsecond {
		t.Errorf("a start with --time-slice 0 changed the slice to %s", got)
	}
}

func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
