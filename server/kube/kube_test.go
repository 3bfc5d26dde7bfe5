package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

const waitLong = 60 * time.Second

// meshOf is a node's peers as "name key endpoint ips owner" lines.
func meshOf(l local) []string {
	var out []string
	for _, p := range l.Peers {
		out = append(out, fmt.Sprintf("%s %s %s %v %s", p.Name, p.PublicKey, p.Endpoint, p.AllowedIPs, p.Owner))
	}
	slices.Sort(out)
	return out
}

func expectedMesh(nodes []*node, self int) []string {
	var out []string
	for j, n := range nodes {
		if j == self || n == nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s 10.88.0.%d:%d [10.99.0.%d/32] kube", n.name, n.pub, j+1, 51820+j, j+1))
	}
	slices.Sort(out)
	return out
}

func (e *env) posture(t testing.TB) *v1.KedgeClusterPosture {
	t.Helper()
	var p v1.KedgeClusterPosture
	if err := e.admin.kedge.Get().Resource(v1.ResourcePostures).Name(DefaultPostureObject).Do(context.Background()).Into(&p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestClusterEngine runs three nodes against one real API server:
// discovery, cluster posture, local precedence, pods, RBAC, a node that
// leaves, and the API going away and coming back.
func TestClusterEngine(t *testing.T) {
	e := newEnv(t)
	var nodes []*node
	for i := range 3 {
		n := newNode(t, fmt.Sprintf("n%d", i), i)
		e.addNode(t, n.name, fmt.Sprintf("10.88.0.%d", i+1))
		n.start(t, e, Options{})
		nodes = append(nodes, n)
	}
	meshed := func(nodes []*node) func() bool {
		return func() bool {
			for i, n := range nodes {
				if n != nil && !slices.Equal(meshOf(n.local()), expectedMesh(nodes, i)) {
					return false
				}
			}
			return true
		}
	}

	t.Run("discovery", func(t *testing.T) {
		eventually(t, "every node to have the others as peers", waitLong, meshed(nodes))
		for i, n := range nodes {
			if got, want := n.local().Endpoint, fmt.Sprintf("10.88.0.%d:%d", i+1, 51820+i); got != want {
				t.Errorf("%s: /kedge/mesh/state/endpoint %q, want %q", n.name, got, want)
			}
			var kn v1.KedgeNode
			if err := e.admin.kedge.Get().Resource(v1.ResourceNodes).Name(n.name).Do(context.Background()).Into(&kn); err != nil {
				t.Fatal(err)
			}
			want := v1.KedgeNodeStatus{PublicKey: n.pub, Endpoint: fmt.Sprintf("10.88.0.%d:%d", i+1, 51820+i),
				OverlayAddresses: []string{fmt.Sprintf("10.99.0.%d/32", i+1)}, Cluster: "home", Role: "homelab", EffectiveLevel: 5}
			if !nodeStatusEqual(kn.Status, want) {
				t.Errorf("%s: KedgeNode status %+v, want %+v", n.name, kn.Status, want)
			}
			if len(kn.OwnerReferences) != 1 || kn.OwnerReferences[0].Kind != "Node" || kn.OwnerReferences[0].Name != n.name {
				t.Errorf("%s: owner references %+v, want its Node", n.name, kn.OwnerReferences)
			}
		}
	})

	t.Run("posture 5-1-5", func(t *testing.T) {
		for _, level := range []int{1, 5} {
			e.setPosture(t, level)
			eventually(t, fmt.Sprintf("every node at effective level %d", level), waitLong, func() bool {
				for _, n := range nodes {
					l := n.local()
					if int(l.EffectiveLevel) != level || int(l.ClusterLevel) != level {
						return false
					}
				}
				return true
			})
			eventually(t, "the posture status to list every node", waitLong, func() bool {
				p := e.posture(t)
				if len(p.Status.Nodes) != len(nodes) {
					return false
				}
				for _, np := range p.Status.Nodes {
					if int(np.EffectiveLevel) != level || int(np.ObservedLevel) != level || np.LastTransitionTime == nil {
						return false
					}
				}
				return true
			})
		}
		// Every entry is owned by its own node's field manager.
		p := e.posture(t)
		managers := map[string]bool{}
		for _, mf := range p.ManagedFields {
			if mf.Subresource == "status" {
				managers[mf.Manager] = true
			}
		}
		for _, n := range nodes {
			if !managers[FieldManager(n.name)] {
				t.Errorf("no status field manager %s in %v", FieldManager(n.name), slices.Collect(maps.Keys(managers)))
			}
		}
	})

	t.Run("local config and map hold against the cluster", func(t *testing.T) {
		n := nodes[0]
		commit(t, n.st, false, "/kedge/posture/config/level", 2)
		eventually(t, "n0 at 2 from its config", waitLong, func() bool {
			l := n.local()
			return l.EffectiveLevel == 2 && l.Source == "config"
		})
		e.setPosture(t, 4)
		eventually(t, "the cluster at 4 to reach n1", waitLong, func() bool { return nodes[1].local().EffectiveLevel == 4 })
		eventually(t, "n0 to mirror 4", waitLong, func() bool { return n.local().ClusterLevel == 4 })
		if l := n.local(); l.EffectiveLevel != 2 {
			t.Errorf("n0 loosened to %d by the cluster at 4", l.EffectiveLevel)
		}
		commit(t, n.st, false, "/kedge/posture/config/level", nil)
		e.setPosture(t, 5)
		eventually(t, "n0 back at 5", waitLong, func() bool { return n.local().EffectiveLevel == 5 })
	})

	t.Run("local peer wins", func(t *testing.T) {
		n := nodes[0]
		commit(t, n.st, false, "/kedge/mesh/peers/peer[name=n1]/config/owner", "ops",
			"/kedge/mesh/peers/peer[name=n1]/config/endpoint", "192.0.2.9:9999")
		before := n.comp.Rounds()
		n.comp.Kick()
		eventually(t, "three more sync rounds", waitLong, func() bool {
			n.comp.Kick()
			return n.comp.Rounds() >= before+3
		})
		if p := n.local().Peers["n1"]; p.Owner != "ops" || p.Endpoint != "192.0.2.9:9999" {
			t.Errorf("the component clobbered a local peer: %+v", p)
		}
		// Deleting the local entry hands the peer back to the cluster.
		commit(t, n.st, false, "/kedge/mesh/peers/peer[name=n1]", nil)
		eventually(t, "n0 to get n1 back from the cluster", waitLong, meshed(nodes))
	})

	t.Run("pods", func(t *testing.T) {
		ctx := context.Background()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: map[string]string{v1.LabelMaxTier: "operator"}}}
		if _, err := e.core.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web", Annotations: map[string]string{
			v1.AnnotationTier: "master", v1.AnnotationAllowedMode: "underlay", v1.AnnotationAllowedTargets: "192.0.2.0/24"}},
			Spec: corev1.PodSpec{NodeName: "n0", Containers: []corev1.Container{{Name: "c", Image: "scratch"}}}}
		if _, err := e.core.CoreV1().Pods("apps").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The CNI plugin registers the pod claiming master in CNI_ARGS.
		const entry = "/kedge/pods/pod[container-id=abc123][ifname=eth0]/config/"
		commit(t, nodes[0].st, false, entry+"container-id", "abc123", entry+"ifname", "eth0",
			entry+"namespace", "apps", entry+"name", "web", entry+"tier", "master",
			entry+"addresses", []string{"10.244.0.5/32"})
		want := podMeta{ContainerID: "abc123", IfName: "eth0", Namespace: "apps", Name: "web",
			Tier: "operator", AllowedMode: "underlay", AllowedTargets: []string{"192.0.2.0/24"}}
		eventually(t, "the pod's tier from the API, capped by its namespace", waitLong, func() bool {
			pods := nodes[0].local().Pods
			return len(pods) == 1 && podEqual(pods[0], want)
		})
		// The label is raised: the pod gets what it asked for.
		ns.Labels[v1.LabelMaxTier] = "master"
		if _, err := e.core.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want.Tier = "master"
		eventually(t, "the pod's tier to follow its namespace", waitLong, func() bool {
			return podEqual(nodes[0].local().Pods[0], want)
		})
		// The Pod is deleted: the entry drops to the lowest tier.
		if err := e.core.CoreV1().Pods("apps").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a pod the API does not know to get the lowest tier", waitLong, func() bool {
			p := nodes[0].local().Pods[0]
			return p.Tier == "observer" && p.AllowedMode == "overlay" && len(p.AllowedTargets) == 0
		})
	})

	t.Run("rbac", func(t *testing.T) { testRBAC(t, e) })

	t.Run("node leaves", func(t *testing.T) {
		nodes[2].comp.Close() // the daemon is gone with its node
		if err := e.admin.kedge.Delete().Resource(v1.ResourceNodes).Name("n2").Do(context.Background()).Error(); err != nil {
			t.Fatal(err)
		}
		left := []*node{nodes[0], nodes[1], nil}
		eventually(t, "n2 to leave every mesh", waitLong, meshed(left))
		nodes = nodes[:2]
	})

	t.Run("api down", func(t *testing.T) {
		e.setPosture(t, 3)
		eventually(t, "every node at 3", waitLong, func() bool {
			return nodes[0].local().EffectiveLevel == 3 && nodes[1].local().EffectiveLevel == 3
		})
		snap := func() []string {
			var out []string
			for _, n := range nodes {
				l := n.local()
				out = append(out, fmt.Sprintf("%s level %d cluster %d peers %v", n.name, l.EffectiveLevel, l.ClusterLevel, meshOf(l)))
			}
			return out
		}
		before := snap()
		e.cl.StopAPIServer()
		// A new daemon process on n1's tree starts while the API is down:
		// an empty cache must not be mistaken for an empty cluster.
		nodes[1].comp.Close()
		nodes[1].start(t, e, Options{Resync: 100 * time.Millisecond})
		r0, r1 := nodes[0].comp.Rounds(), nodes[1].comp.Rounds()
		eventually(t, "both nodes to notice the API is gone", waitLong, func() bool {
			return !nodes[0].comp.Connected() && !nodes[1].comp.Connected()
		})
		eventually(t, "/kedge/posture/cluster/state/connected false on both nodes", waitLong, func() bool {
			c0, _ := nodes[0].clusterState()
			c1, _ := nodes[1].clusterState()
			return !c0 && !c1
		})
		_, heardBefore := nodes[0].clusterState()
		eventually(t, "20 sync rounds on each node with the API down", waitLong, func() bool {
			nodes[0].comp.Kick()
			nodes[1].comp.Kick()
			if got := snap(); !slices.Equal(got, before) {
				t.Fatalf("the tree changed while the API was down:\n%v\nwas\n%v", got, before)
			}
			// Informers replay their caches every resync (100 ms on
			// n1): that is not the API answering.
			if nodes[0].comp.Connected() || nodes[1].comp.Connected() {
				t.Fatal("a node reads as connected again while the API is down")
			}
			return nodes[0].comp.Rounds() >= r0+20 && nodes[1].comp.Rounds() >= r1+20
		})
		if err := e.cl.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		e.setPosture(t, 5)
		// Well inside the minute a reflector's own backoff could take.
		eventually(t, "the nodes to resync when the API returns", 20*time.Second, func() bool {
			return nodes[0].local().EffectiveLevel == 5 && nodes[1].local().EffectiveLevel == 5 &&
				nodes[0].comp.Connected() && nodes[1].comp.Connected()
		})
		eventually(t, "the mesh to stay whole", waitLong, meshed([]*node{nodes[0], nodes[1], nil}))
		eventually(t, "connected and a later last-sync", waitLong, func() bool {
			c, heard := nodes[0].clusterState()
			return c && heard.After(heardBefore)
		})
	})
}

// testRBAC checks what a daemon's identity may not do: write another
// node's KedgeNode (create, status), change the posture object's spec or
// another node's status entry, delete a KedgeNode; and that it may write
// its own.
func testRBAC(t *testing.T, e *env) {
	cfg, err := e.cl.Config("kedge:node:n1", "kedge:daemons")
	if err != nil {
		t.Fatal(err)
	}
	n1, err := newClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want forbidden", what, err)
		}
	}
	// The admission policy becomes active a moment after it is created.
	eventually(t, "the admission policy to deny n1 writing n0's status", waitLong, func() bool {
		err := n1.applyNodeStatus(ctx, "n0", v1.KedgeNodeStatus{PublicKey: keyA})
		return apierrors.IsForbidden(err)
	})
	forbidden("create another node's KedgeNode", n1.createNode(ctx, "intruder", nil))
	forbidden("delete a KedgeNode", n1.kedge.Delete().Resource(v1.ResourceNodes).Name("n0").Do(ctx).Error())
	forbidden("change the cluster's level", n1.kedge.Patch(types.MergePatchType).Resource(v1.ResourcePostures).
		Name(DefaultPostureObject).Body([]byte(`{"spec":{"level":5}}`)).Do(ctx).Error())
	forbidden("write n0's posture entry", n1.applyPostureStatus(ctx, DefaultPostureObject,
		v1.NodePosture{Name: "n0", EffectiveLevel: 5}))
	forbidden("read secrets", n1.core.Get().Resource("secrets").Do(ctx).Error())
	// Its own objects are fine.
	if err := n1.applyNodeStatus(ctx, "n1", nodeStatusOf(t, e, "n1")); err != nil {
		t.Errorf("n1 writing its own KedgeNode status: %v", err)
	}
}

func nodeStatusOf(t *testing.T, e *env, name string) v1.KedgeNodeStatus {
	var kn v1.KedgeNode
	if err := e.admin.kedge.Get().Resource(v1.ResourceNodes).Name(name).Do(context.Background()).Into(&kn); err != nil {
		t.Fatal(err)
	}
	return kn.Status
}

// TestPostureStatusConcurrentWriters: 20 nodes write their entries of the
// posture status at once, 10 times each; server-side apply with a field
// manager per node merges them, so the final status holds every node's
// last acknowledged write and nothing is lost.
func TestPostureStatusConcurrentWriters(t *testing.T) {
	e := newEnv(t)
	const nodes, rounds = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, nodes*rounds)
	for i := range nodes {
		name := fmt.Sprintf("w%02d", i)
		cfg, err := e.cl.Config("kedge:node:"+name, "kedge:daemons")
		if err != nil {
			t.Fatal(err)
		}
		c, err := newClients(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for r := range rounds {
				lvl := int32(5 - (r+i)%5)
				// A write that fails (a timeout on a loaded machine) was
				// not acknowledged; like the component, try again.
				var err error
				for try := 0; try < 10; try++ {
					if err = c.applyPostureStatus(context.Background(), DefaultPostureObject,
						v1.NodePosture{Name: name, EffectiveLevel: lvl, ObservedLevel: int32(r + 1)}); err == nil {
						break
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p := e.posture(t)
	got := map[string]v1.NodePosture{}
	for _, np := range p.Status.Nodes {
		got[np.Name] = np
	}
	for i := range nodes {
		name := fmt.Sprintf("w%02d", i)
		want := v1.NodePosture{Name: name, EffectiveLevel: int32(5 - (rounds-1+i)%5), ObservedLevel: rounds}
		if g, ok := got[name]; !ok || !nodePostureEqual(g, want) {
			b, _ := json.Marshal(g)
			t.Errorf("%s: entry %s, want its last write %+v", name, b, want)
		}
	}
	if len(got) != nodes {
		t.Errorf("%d entries, want %d", len(got), nodes)
	}
}
