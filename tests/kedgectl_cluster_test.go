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
// level with its object and the API connected (golden output). How an
// unreachable API reads is kedgectl's unit test (the component's own
// detection of an outage is server/kube's).
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
}
