package intent

import (
	"fmt"
	"testing"

	"github.com/guildhouse-co/kedge/models/accord"
)

// BenchmarkPodsOneChange times the change set after a commit moving one
// pod's address among 1,000 pods (and 1,000 route entries): a CNI ADD's
// intent. Before podcache.go it read every pod from the tree.
func BenchmarkPodsOneChange(b *testing.B) {
	const pods = 1_000
	var ls []leaf
	for i := range pods {
		ls = append(ls, podLeaves(fmt.Sprintf("p%04d", i), fmt.Sprintf(`["10.1.%d.%d/32"]`, i/250, 1+i%250), fmt.Sprintf("veth%d", i), "", "")...)
		ls = append(ls, routeLeaves(fmt.Sprintf("10.40.%d.%d/32", i/256, i%256), "underlay", "operator")...)
	}
	tr := buildTree(b, ls)
	acc, _ := accord.Default(5)
	var cache RouteCache
	var seq uint64
	if _, err := cache.Changes(tr, acc, seq); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		changes := setLeaf(b, tr, "/kedge/pods/pod[container-id=p0500][ifname=eth0]/config/addresses",
			js(fmt.Sprintf(`["10.2.%d.%d/32"]`, i%200, 1+i%250)))
		seq++
		cache.Observe(seq, false, changes)
		b.StartTimer()
		set, err := cache.Changes(tr, acc, seq)
		if err != nil || set.Delta == nil || len(set.Delta.Patch.Put) != 1 || len(set.Pods) != pods {
			b.Fatalf("not a one-pod change set (err %v)", err)
		}
		set.Release()
	}
}
