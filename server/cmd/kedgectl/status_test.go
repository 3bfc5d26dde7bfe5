package main

import (
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/models/summary"
)

// The cluster posture line: the level and its object, or that the cluster
// sets none; whether the API answers and when it last did.
func TestClusterLine(t *testing.T) {
	now := time.Unix(1700000100, 0)
	for _, c := range []struct {
		in          summary.ClusterPosture
		level, link string
	}{
		{summary.ClusterPosture{Level: 3, Object: "cluster", Connected: true, LastSync: now.Add(-2 * time.Second)},
			"level 3 (strict) from cluster", "API connected, last heard 2s ago"},
		{summary.ClusterPosture{Level: 1, Object: "prod", LastSync: now.Add(-90 * time.Second)},
			"level 1 (lockdown) from prod", "API unreachable, last heard 1m ago"},
		{summary.ClusterPosture{Object: "cluster"}, "no level from cluster", "API unreachable, last heard never"},
	} {
		if got := clusterLevel(&c.in); got != c.level {
			t.Errorf("%+v: level %q, want %q", c.in, got, c.level)
		}
		if got := clusterLink(&c.in, now); got != c.link {
			t.Errorf("%+v: link %q, want %q", c.in, got, c.link)
		}
	}
}
