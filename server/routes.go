package server

import "github.com/guildhouse-co/kedge/server/posture"

// startRoutes starts the route backend's reconciler and returns its
// posture step.
func (d *Daemon) startRoutes(dp *dataplane, on bool, avail map[string]bool) ([]posture.Step, error) {
	return nil, nil
}
