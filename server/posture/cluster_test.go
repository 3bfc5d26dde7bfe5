package posture

import (
	"context"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

func setClusterLevel(t testing.TB, st *store.Store, level uint8) {
	t.Helper()
	op := store.Op{Kind: store.OpDelete, Path: mustPath(t, "/kedge/posture/cluster/config/level")}
	if level != 0 {
		op = store.Op{Kind: store.OpUpdate, Path: op.Path,
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: uint64(level)}}}
	}
	if _, err := st.Commit(context.Background(), []store.Op{op}); err != nil {
		t.Fatal(err)
	}
}

// TestClusterLevelTightensNeverLoosens: the cluster's level is a third
// source of the effective level. It tightens a node (5 → 1 → 5 follows it),
// but neither a cluster at 5 nor its removal loosens what the node's config
// or another program's BPF-map write asked for.
func TestClusterLevelTightensNeverLoosens(t *testing.T) {
	st := openStore(t)
	src := &fakeSource{}
	rs := allStages()
	start(t, st, Options{Steps: asSteps(rs), LevelSource: src})
	want := func(level uint8, source string) {
		t.Helper()
		waitFor(t, "effective level "+source, func() bool {
			return effectiveLevel(st) == level && postureState(st, "source").Str() == source
		})
	}
	want(5, SourceConfig)
	setClusterLevel(t, st, 1)
	want(1, SourceCluster)
	setClusterLevel(t, st, 5)
	want(5, SourceConfig)

	// Another program holds the node at 2: the cluster at 5 cannot loosen
	// it, the cluster at 1 tightens it further, and back at 5 the node
	// returns to the program's 2, not to 5.
	src.set(2)
	want(2, SourceBPFMap)
	setClusterLevel(t, st, 1)
	want(1, SourceCluster)
	setClusterLevel(t, st, 5)
	want(2, SourceBPFMap)
	src.set(5) // the program relaxes
	want(5, SourceConfig)

	// The node's own config at 3 holds against a cluster at 4 and at none.
	setLevel(t, st, 3)
	setClusterLevel(t, st, 4)
	want(3, SourceConfig)
	setClusterLevel(t, st, 3)
	want(3, SourceConfig) // a tie goes to config
	setClusterLevel(t, st, 0)
	want(3, SourceConfig)
	if got := rs[0].last().Level; got != 3 {
		t.Errorf("first stage last applied level %d, want 3", got)
	}
}
