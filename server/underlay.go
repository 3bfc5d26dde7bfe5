package server

import (
	"fmt"
	"os"

	"github.com/guildhouse-co/kedge/server/underlay"
)

// underlay builds the underlay component (network devices over gNMI).
// Its credentials directory is made 0700 when missing.
func (d *Daemon) underlay() (*underlay.Component, error) {
	dir := d.cfg.UnderlayCredentials
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create underlay credentials dir: %w", err)
	}
	c, err := underlay.New(d.st, underlay.Options{Logger: d.log.With("component", "underlay"), CredentialsDir: dir})
	if err != nil {
		return nil, err
	}
	d.log.Info("underlay", "credentials", dir)
	return c, nil
}
