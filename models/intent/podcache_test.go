package intent

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// TestOnePodCommitReadsOnePod: after a commit touching one pod, a change
// set reads that pod and no other from the tree (a pod's state status
// write reads none), and still equals the whole recomputation's pods and
// side routes.
func TestOnePodCommitReadsOnePod(t *testing.T) {
	const pods = 200
	tr, cache, acc, leaves := podLab(t, pods)
	if cache.pods.reads != pods || cache.pods.walks != 1 {
		t.Fatalf("first intent read %d pods in %d walks, want %d in 1", cache.pods.reads, cache.pods.walks, pods)
	}
	seq := uint64(0)
	commit := func(what string, reads int, ops ...op) {
		t.Helper()
		changes, ok := applyOps(t, tr, ops)
		if !ok {
			t.Fatalf("%s: commit refused", what)
		}
		seq++
		cache.Observe(seq, ops[0].state, changes)
		before := cache.pods.reads
		got, err := cache.Changes(tr, acc, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.Delta == nil {
			t.Fatalf("%s: a whole set: the test no longer exercises change sets", what)
		}
		if n := cache.pods.reads - before; n != reads || cache.pods.walks != 1 {
			t.Fatalf("%s: read %d pods (%d walks), want %d", what, n, cache.pods.walks, reads)
		}
		want, _ := Routes(tr, acc)
		if !reflect.DeepEqual(got.Pods, want.Pods) || !reflect.DeepEqual(got.PodsPending, want.PodsPending) {
			t.Fatalf("%s: pods %v pending %v, want %v pending %v", what, got.Pods, got.PodsPending, want.Pods, want.PodsPending)
		}
		if side := len(got.Delta.Installed) + len(got.Delta.Patch.Put); side != len(want.Origins) {
			t.Fatalf("%s: %d side routes put or installed, want %d", what, side, len(want.Origins))
		}
		got.Release()
	}
	var move []op
	for _, l := range leaves(7, 300) {
		move = append(move, op{path: l.path, val: l.val})
	}
	commit("a pod's new address", 1, move...)
	var add []op
	for _, l := range leaves(pods, 301) {
		add = append(add, op{path: l.path, val: l.val})
	}
	commit("a new pod", 1, add...)
	pod := fmt.Sprintf("/kedge/pods/pod[container-id=p%03d][ifname=eth0]", 9)
	commit("a pod's state", 0, op{path: pod + "/state/status", val: s("active"), state: true})
	commit("a pod's state removed", 0, op{path: pod + "/state/status", state: true})
	commit("a pod deleted", 0, op{path: pod})
}

// podLab is a tree of n pods (pod i: "p%03d", one address from i, host
// interface veth<i>) and a cache that has read it; leaves(i, addr) are pod
// i's leaves with the address from addr.
func podLab(t *testing.T, n int) (*tree.Tree, *RouteCache, accord.Accord, func(i, addr int) []leaf) {
	t.Helper()
	leaves := func(i, addr int) []leaf {
		return podLeaves(fmt.Sprintf("p%03d", i), fmt.Sprintf(`["10.1.%d.%d/32"]`, addr/250, 1+addr%250), fmt.Sprintf("veth%d", i), "", "")
	}
	var ls []leaf
	for i := range n {
		ls = append(ls, leaves(i, i)...)
	}
	tr := build(t, ls)
	acc, _ := accord.Default(5)
	cache := &RouteCache{}
	if _, err := cache.Changes(tr, acc, 0); err != nil {
		t.Fatal(err)
	}
	return tr, cache, acc, leaves
}
