package tests

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/tests/kubetest"
)

// kubeManifests lists every manifest under deploy/kubernetes, CRDs first
// (kustomization files are build instructions, not objects).
func kubeManifests(t testing.TB) []string {
	t.Helper()
	var crds, rest []string
	err := filepath.WalkDir(filepath.Join("..", "deploy", "kubernetes"), func(p string, d fs.DirEntry, err error) error {
		// Kustomizations and kustomize patches (*.patch.yaml, partial
		// objects for a component) are not objects to apply.
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || d.Name() == "kustomization.yaml" ||
			strings.HasSuffix(p, ".patch.yaml") {
			return err
		}
		if strings.Contains(p, string(filepath.Separator)+"crds"+string(filepath.Separator)) {
			crds = append(crds, p)
		} else {
			rest = append(rest, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(crds)
	slices.Sort(rest)
	return append(crds, rest...)
}

// TestKubeManifestsApply applies every manifest in deploy/kubernetes to a
// real API server: a server-side dry run of all of them (every object the
// server can check without its CRD in place), then for real.
func TestKubeManifestsApply(t *testing.T) {
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files := kubeManifests(t)
	var crds []string
	for _, f := range files {
		if strings.Contains(f, "crds") {
			crds = append(crds, f)
		}
	}
	if _, err := kubetest.Apply(ctx, cl.Admin(), kubetest.ApplyOptions{DryRun: true}, crds...); err != nil {
		t.Fatalf("dry run of the CRDs: %v", err)
	}
	objs, err := kubetest.Apply(ctx, cl.Admin(), kubetest.ApplyOptions{}, files...)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
		"ValidatingAdmissionPolicyBinding", "KedgeClusterPosture", "Namespace", "ServiceAccount"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the applied objects %v", k, kinds)
		}
	}
	// Applying again changes nothing and fails nothing.
	if _, err := kubetest.Apply(ctx, cl.Admin(), kubetest.ApplyOptions{}, files...); err != nil {
		t.Fatalf("second apply: %v", err)
	}
}

// kubeLab is a meshLab whose daemons join a real API server.
type kubeLab struct {
	*meshLab
	cl   *kubetest.Cluster
	core *kubernetes.Clientset
	pins string // n0's BPF pin dir
}

func newKubeLab(t *testing.T, n int) *kubeLab {
	t.Helper()
	meshNeedRoot(t)
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := kubetest.Apply(ctx, cl.Admin(), kubetest.ApplyOptions{}, kubeManifests(t)...); err != nil {
		t.Fatal(err)
	}
	core, err := kubernetes.NewForConfig(cl.Admin())
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeLab{meshLab: newMeshLab(t, n), cl: cl, core: core,
		pins: fmt.Sprintf("/sys/fs/bpf/kedge-tests-kube-%d-%d", os.Getpid(), rand.IntN(1<<30))}
	t.Cleanup(func() { os.RemoveAll(k.pins) })
	for _, nd := range k.nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.name},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nd.under.String()}}}}
		if _, err := core.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Restart the daemon joined to the cluster, as kedge:node:NAME.
		nd.stop()
		kc, err := cl.Kubeconfig("kedge:node:"+nd.name, "kedge:daemons")
		if err != nil {
			t.Fatal(err)
		}
		c := daemonCfg(t, nd.dir, nd.ns)
		c.NodeName, c.Kubeconfig = nd.name, kc
		if nd.i == 0 {
			c.BPFPinDir = k.pins
		}
		nd.c, nd.stop = startKedge(t, c)
		// The node's own interface is local config; its peers are not.
		meshMustSet(t, nd.c, map[string]string{"/kedge/mesh/config": fmt.Sprintf(
			`{"interface":%q,"listen-port":51820,"addresses":["%s/24"]}`, nd.iface, nd.tunnel)})
	}
	return k
}

func (k *kubeLab) setClusterLevel(t testing.TB, level int) {
	t.Helper()
	cfg := k.cl.Admin()
	rc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = rc.RESTClient().Patch(types.MergePatchType).AbsPath("/apis/kedge.guildhouse.dev/v1alpha1/kedgeclusterpostures/cluster").
		Body([]byte(fmt.Sprintf(`{"spec":{"level":%d}}`, level))).Do(context.Background()).Error()
	if err != nil {
		t.Fatalf("set the cluster's level to %d: %v", level, err)
	}
}

func (nd *meshNode) effective(t testing.TB) string {
	return meshLeaves(t, nd.c, "/kedge/posture/state/effective-level")["/kedge/posture/state/effective-level"]
}

// peersOf is a node's peer config as gNMI shows it, one line per leaf.
func (nd *meshNode) peersOf(t testing.TB) []string {
	var out []string
	for p, v := range meshLeaves(t, nd.c, "/kedge/mesh/peers") {
		if strings.Contains(p, "/config/") {
			out = append(out, p+"="+v)
		}
	}
	slices.Sort(out)
	return out
}

func (k *kubeLab) waitLevel(t testing.TB, want func(nd *meshNode) string) {
	t.Helper()
	k.waitLevelWithin(t, 60*time.Second, want)
}

func (k *kubeLab) waitLevelWithin(t testing.TB, d time.Duration, want func(nd *meshNode) string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, nd := range k.nodes {
		w := want(nd)
		meshWait(t, fmt.Sprintf("%s at effective level %s", nd.name, w), time.Until(deadline), func() bool { return nd.effective(t) == w })
	}
}

// TestKubeMesh: three daemons in network namespaces join a real API
// server and form the WireGuard mesh with no peer configured by gNMI; the
// cluster's posture 5→1→5 reaches every node; a BPF-map level 2 on one
// node is not loosened by the cluster at 5; the API gone for 30 s changes
// nothing on the nodes, which resync when it returns.
func TestKubeMesh(t *testing.T) {
	k := newKubeLab(t, 3)

	// Discovery: every node learns the others from their KedgeNodes.
	for _, nd := range k.nodes {
		meshWait(t, nd.name+" peers from the cluster", 60*time.Second, func() bool {
			l := meshLeaves(t, nd.c, "/kedge/mesh/peers/peer/config/owner")
			n := 0
			for _, v := range l {
				if v == "kube" {
					n++
				}
			}
			return n == len(k.nodes)-1
		})
		ep := meshLeaves(t, nd.c, "/kedge/mesh/state/endpoint")["/kedge/mesh/state/endpoint"]
		if want := net.JoinHostPort(nd.under.String(), "51820"); ep != want {
			t.Errorf("%s: /kedge/mesh/state/endpoint %q, want %q", nd.name, ep, want)
		}
	}
	for _, nd := range k.nodes {
		nd.serveEcho(t)
		meshInNetns(t, nd.ns, func() error {
			var err error
			nd.echo, err = net.ListenUDP("udp4", &net.UDPAddr{})
			return err
		})
		t.Cleanup(func() { nd.echo.Close() })
	}
	k.pairs(t, "mesh from the cluster", meshAll)

	// The API goes away for 30 s: every node keeps its peers and level and
	// serves gNMI; the mesh keeps carrying traffic. Then the API returns
	// and the nodes follow it again.
	before := map[string][]string{}
	for _, nd := range k.nodes {
		before[nd.name] = append(nd.peersOf(t), "level="+nd.effective(t))
	}
	k.cl.StopAPIServer()
	down := time.Now()
	for time.Since(down) < 30*time.Second {
		for _, nd := range k.nodes {
			if got := append(nd.peersOf(t), "level="+nd.effective(t)); !slices.Equal(got, before[nd.name]) {
				t.Fatalf("%s changed %s after the API went away:\n%v\nwas\n%v", nd.name, time.Since(down), got, before[nd.name])
			}
		}
		time.Sleep(time.Second) // pacing the checks over the 30 s the issue asks for, not synchronisation
	}
	k.pairs(t, "mesh with the API down", meshAll)
	if err := k.cl.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	// The informers wait for the API rather than back off from it, so the
	// nodes follow within seconds of its return, not the minute a
	// reflector's own backoff can take.
	k.setClusterLevel(t, 4)
	k.waitLevelWithin(t, 20*time.Second, func(*meshNode) string { return "4" })
	k.setClusterLevel(t, 5)
	k.waitLevel(t, func(*meshNode) string { return "5" })

	// Cluster posture 5 → 1 → 5 reaches every node.
	for _, level := range []string{"1", "5"} {
		lv := int(level[0] - '0')
		k.setClusterLevel(t, lv)
		k.waitLevel(t, func(*meshNode) string { return level })
	}

	// Another program holds n0 at 2 through its BPF map: the cluster at 5
	// does not loosen it; the cluster at 1 tightens it further; back at 5
	// the node returns to the program's 2.
	b, err := pinned.Open(pinned.WithPinDir(k.pins))
	if err != nil {
		t.Fatalf("open n0's BPF map: %v", err)
	}
	defer b.Close()
	if err := b.Set(context.Background(), bpfmap.Config{Level: 2}); err != nil {
		t.Fatal(err)
	}
	held := func(nd *meshNode) string {
		if nd.i == 0 {
			return "2"
		}
		return "5"
	}
	k.waitLevel(t, held)
	k.setClusterLevel(t, 1)
	k.waitLevel(t, func(*meshNode) string { return "1" })
	k.setClusterLevel(t, 5)
	k.waitLevel(t, held)
	if err := b.Set(context.Background(), bpfmap.Config{Level: 5}); err != nil {
		t.Fatal(err)
	}
	k.waitLevel(t, func(*meshNode) string { return "5" })

	// Level 1 tore the tunnels down with a DRAIN, so each node holds the
	// others posture-down until its de-escalation signal: the peer's
	// reconnect leaf, written locally. It coexists with the cluster's
	// management of the peer, and the mesh comes back.
	for _, nd := range k.nodes {
		vals := map[string]string{}
		for _, o := range k.nodes {
			if o != nd {
				vals[meshPeerPath(o.name)+"/reconnect"] = fmt.Sprint(time.Now().UnixNano())
			}
		}
		meshMustSet(t, nd.c, vals)
	}
	k.pairs(t, "mesh after the de-escalation signal", meshAll)
	for _, nd := range k.nodes {
		for p, v := range meshLeaves(t, nd.c, "/kedge/mesh/peers/peer/config/owner") {
			if v != "kube" {
				t.Errorf("%s: %s = %q, want kube", nd.name, p, v)
			}
		}
	}
}
