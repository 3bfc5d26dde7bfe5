package server

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/gcpolicy"
)

// applyGCPolicy sets the process's garbage-collector policy from the
// configuration, the environment and the cgroup (server/gcpolicy), before
// the store loads, so a big tree is read under it too.
func applyGCPolicy(cfg config.Config, log *slog.Logger) error {
	p, err := gcpolicy.Resolve(cfg.GCPercent, cfg.MemoryLimit, gcpolicy.Sources{Env: os.LookupEnv, Cgroup: gcpolicy.CgroupLimit})
	if err != nil {
		return err
	}
	p.Apply()
	limit := "none"
	if p.Limit > 0 {
		limit = fmt.Sprintf("%.0f MiB", float64(p.Limit)/(1<<20))
	}
	log.Info("garbage collector", "gc_percent", p.Percent, "from", p.PercentFrom, "memory_limit", limit, "limit_from", p.LimitFrom)
	return nil
}
