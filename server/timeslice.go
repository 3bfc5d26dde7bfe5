package server

import (
	"errors"
	"log/slog"

	"github.com/guildhouse-co/kedge/internal/timeslice"
	"github.com/guildhouse-co/kedge/server/config"
)

// applyTimeSlice asks the kernel for the configured time slice on every
// thread of the process (internal/timeslice says why). A kernel that
// cannot leaves its default, with a warning: the daemon works either
// way, its Sets' tail under read load is longer.
func applyTimeSlice(cfg config.Config, log *slog.Logger) {
	if cfg.TimeSlice == 0 {
		log.Info("time slice", "slice", "kernel default")
		return
	}
	n, err := timeslice.Apply(cfg.TimeSlice)
	switch {
	case errors.Is(err, timeslice.ErrUnsupported):
		log.Warn("time slice: the kernel's default stays (per-thread slices need Linux 6.12 or later)", "want", cfg.TimeSlice, "err", err)
	case err != nil:
		log.Warn("time slice: the kernel's default stays", "want", cfg.TimeSlice, "err", err)
	default:
		log.Info("time slice", "slice", cfg.TimeSlice, "threads", n)
	}
}
