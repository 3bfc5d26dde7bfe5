package server

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/server/config"
)

// The daemon's start sets the process's collector policy from its
// configuration and says so; GOGC and GOMEMLIMIT in the environment win;
// a policy that cannot be met refuses the start.
func TestDaemonSetsGCPolicy(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})
	start := func(mod func(c *config.Config)) (string, error) {
		c := testConfig(t)
		mod(&c)
		var logs bytes.Buffer
		d, err := Start(c, slog.New(slog.NewTextHandler(&logs, nil)))
		if err == nil {
			d.Shutdown(time.Second)
		}
		return logs.String(), err
	}

	logs, err := start(func(c *config.Config) { c.GCPercent, c.MemoryLimit = 137, "768Mi" })
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 137 {
		t.Errorf("gc percent %d after start, want 137", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 768<<20 {
		t.Errorf("memory limit %d after start, want %d", got, 768<<20)
	}
	if want := "gc_percent=137 from=gc-percent memory_limit=\"768 MiB\" limit_from=memory-limit"; !strings.Contains(logs, want) {
		t.Errorf("start log lacks %q:\n%s", want, logs)
	}

	t.Setenv("GOGC", "75")
	t.Setenv("GOMEMLIMIT", "2GiB")
	logs, err = start(func(c *config.Config) { c.GCPercent, c.MemoryLimit = 137, "768Mi" })
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 75 {
		t.Errorf("gc percent %d with GOGC=75, want 75", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 {
		t.Errorf("memory limit %d with GOMEMLIMIT=2GiB, want %d", got, 2<<30)
	}
	if want := "gc_percent=75 from=GOGC memory_limit=\"2048 MiB\" limit_from=GOMEMLIMIT"; !strings.Contains(logs, want) {
		t.Errorf("start log lacks %q:\n%s", want, logs)
	}

	t.Setenv("GOGC", "off")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(123)
	if _, err := start(func(c *config.Config) { c.MemoryLimit = "off" }); err == nil || !strings.Contains(err.Error(), "needs a memory limit") {
		t.Fatalf("start with the collector off and no limit: %v, want refused", err)
	}
	if got := debug.SetGCPercent(100); got != 123 {
		t.Errorf("a refused start changed gc percent to %d", got)
	}
}
