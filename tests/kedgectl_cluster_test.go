package tests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/models/summary"
)

// TestKedgectlCluster: a daemon joined to a real API server (the cluster
// engine, server/kube). With the cluster at level 3, posture get and
// status show the effective level 3 from source cluster, the cluster's
// level with its object and the API connected (golden output); with the
// API server stopped status says the API is unreachable, the level kept.
func TestKedgectlCluster(t *testing.T) {
	k := newKubeLab(t, 1)
	bin := gcliBuild(t, t.TempDir(), "github.com/guildhouse-co/kedge/server/cmd/kedgectl")
	nd := k.nodes[0]
	addr := []string{"--addr", "unix://" + filepath.Join(nd.dir, "kedge.sock")}
	env := []string{"KEDGE_ADDR=", "KEDGE_USER=", "KEDGE_PASSWORD="}
	run := func(args ...string) ctlRun { t.Helper(); return ctlMust(t, bin, env, append(addr, args...)...) }
	posture := func() summary.Posture {
		t.Helper()
		var p summary.Posture
		if err := json.Unmarshal([]byte(run("posture", "get", "-o", "json").stdout), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	k.setClusterLevel(t, 3)
	k.waitLevel(t, func(*meshNode) string { return "3" })
	meshWait(t, "the cluster's level 3 and the API connected", 60*time.Second, func() bool {
		p := posture()
		return p.Cluster != nil && p.Cluster.Level == 3 && p.Cluster.Connected && !p.Cluster.LastSync.IsZero() && p.Source == "cluster"
	})
	m := masker{exact: [][2]string{{k.id, "LAB"}}}
	golden(t, m, "posture-get-cluster", run("posture", "get").stdout)
	st := run("status").stdout
	line := ""
	for l := range strings.Lines(st) {
		if strings.HasPrefix(l, "cluster posture") {
			line = l
		}
	}
	golden(t, m, "status-cluster-line", line)

	// The component's probe notices the outage within its period (an
	// informer event still in flight may briefly mark it connected again).
	k.cl.StopAPIServer()
	var down string
	meshWait(t, "status saying the API is unreachable", 60*time.Second, func() bool {
		down = run("status").stdout
		return strings.Contains(down, "API unreachable")
	})
	if !strings.Contains(m.mask(down), "cluster posture  level 3 (strict) from cluster  API unreachable, last heard <ago>") {
		t.Errorf("status with the API down:\n%s", down)
	}
}
