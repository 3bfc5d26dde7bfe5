package server

import "github.com/guildhouse-co/kedge/server/posture"

// startReconcilers starts the reconcilers of the tree-driven backends
// (routes, mesh) and returns their posture steps. Each backend gets one
// reconciler (tree changes) and one step (posture transitions), both
// calling its idempotent Set with the same intent.
func (d *Daemon) startReconcilers(dp *dataplane, on bool, avail map[string]bool) ([]posture.Step, error) {
	var steps []posture.Step
	for _, start := range []func(*dataplane, bool, map[string]bool) ([]posture.Step, error){d.startRoutes, d.startMesh} {
		s, err := start(dp, on, avail)
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	return steps, nil
}
