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

	// applied checks the runtime's settings after a start and its log.
	applied := func(mod func(c *config.Config), percent int, limit int64, log string) {
		t.Helper()
		logs, err := start(mod)
		if err != nil {
			t.Fatal(err)
		}
		if got := debug.SetGCPercent(100); got != percent {
			t.Errorf("gc percent %d after start, want %d", got, percent)
		}
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Errorf("memory limit %d after start, want %d", got, limit)
		}
		if !strings.Contains(logs, log) {
			t.Errorf("start log lacks %q:\n%s", log, logs)
		}
	}
	configured := func(c *config.Config) { c.GCPercent, c.MemoryLimit = 137, "768Mi" }
	applied(configured, 137, 768<<20, `gc_percent=137 from=gc-percent memory_limit="768 MiB" limit_from=memory-limit`)
	t.Setenv("GOGC", "75")
	t.Setenv("GOMEMLIMIT", "2GiB")
	applied(configured, 75, 2<<30, `gc_percent=75 from=GOGC memory_limit="2048 MiB" limit_from=GOMEMLIMIT`)

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
