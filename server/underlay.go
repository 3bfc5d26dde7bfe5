package server

import (
	"context"
	"fmt"
	"os"

	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/underlay"
)

// startUnderlay starts the underlay component (network devices over gNMI;
// it touches no kernel state, so it runs whatever the dataplane setting)
// and returns its posture step. Its credentials directory is made 0700
// when missing.
func (d *Daemon) startUnderlay(dp *dataplane) (posture.Step, error) {
	dir := d.cfg.UnderlayCredentials
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create underlay credentials dir: %w", err)
	}
	c, err := underlay.New(d.st, underlay.Options{Logger: d.log.With("component", "underlay"), CredentialsDir: dir})
	if err != nil {
		return nil, err
	}
	if err := c.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start underlay: %w", err)
	}
	dp.closers = append(dp.closers, c.Close)
	d.log.Info("underlay", "credentials", dir)
	return c.Step(), nil
}
