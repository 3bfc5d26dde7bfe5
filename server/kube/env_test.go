package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/tests/kubetest"
	"github.com/guildhouse-co/kedge/yang"
)

// env is a real API server with Kedge's CRDs, RBAC, admission policy and
// cluster posture object applied, and admin clients.
type env struct {
	cl    *kubetest.Cluster
	admin *clients
	core  *kubernetes.Clientset
}

func repoFile(t testing.TB, rel string) string {
	t.Helper()
	_, me, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(me), "..", "..", rel)
}

// engineManifests are the cluster-engine manifests, in apply order.
func engineManifests(t testing.TB) []string {
	var out []string
	for _, f := range []string{"crds/kedge.guildhouse.dev_kedgenodes.yaml", "crds/kedge.guildhouse.dev_kedgeclusterpostures.yaml",
		"cluster-engine/namespace.yaml", "cluster-engine/rbac.yaml", "cluster-engine/admission.yaml", "cluster-engine/posture.yaml"} {
		out = append(out, repoFile(t, filepath.Join("deploy", "kubernetes", f)))
	}
	return out
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := kubetest.Apply(ctx, cl.Admin(), kubetest.ApplyOptions{}, engineManifests(t)...); err != nil {
		t.Fatal(err)
	}
	admin, err := newClients(cl.Admin())
	if err != nil {
		t.Fatal(err)
	}
	core, err := kubernetes.NewForConfig(cl.Admin())
	if err != nil {
		t.Fatal(err)
	}
	return &env{cl: cl, admin: admin, core: core}
}

// addNode creates a Node object with an InternalIP, as a kubelet would.
func (e *env) addNode(t testing.TB, name, ip string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	ctx := context.Background()
	got, err := e.core.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Addresses) == 0 {
		got.Status = n.Status
		if _, err := e.core.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// setPosture sets the cluster object's level.
func (e *env) setPosture(t testing.TB, level int) {
	t.Helper()
	body := fmt.Sprintf(`{"spec":{"level":%d}}`, level)
	err := e.admin.kedge.Patch("application/merge-patch+json").Resource("kedgeclusterpostures").Name(DefaultPostureObject).
		Body([]byte(body)).Do(context.Background()).Error()
	if err != nil {
		t.Fatal(err)
	}
}

// node is one simulated daemon: a real tree store, a real posture engine
// (no steps: only the effective level matters here) and the component,
// authenticated as kedge:node:NAME.
type node struct {
	name  string
	dir   string
	st    *store.Store
	pub   string
	comp  *Component
	stops []func()
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store"), schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustPath(t testing.TB, s string) []*gpb.PathElem {
	t.Helper()
	p, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func commit(t testing.TB, st *store.Store, state bool, kv ...any) {
	t.Helper()
	var o []store.Op
	for i := 0; i < len(kv); i += 2 {
		p := mustPath(t, kv[i].(string))
		var v tree.Value
		switch x := kv[i+1].(type) {
		case nil:
			o = append(o, store.Op{Kind: store.OpDelete, Path: p})
			continue
		case string:
			v = tree.String(x)
		case int:
			v = tree.Uint(uint64(x))
		case []string:
			var vs []tree.Value
			for _, s := range x {
				vs = append(vs, tree.String(s))
			}
			v = tree.ListValue(vs)
		}
		o = append(o, store.Op{Kind: store.OpUpdate, Path: p, Val: tree.Typed(v)})
	}
	var err error
	if state {
		_, err = st.CommitState(context.Background(), o)
	} else {
		_, err = st.Commit(context.Background(), o)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// newNode opens a store for a node, gives it a mesh (config as a local
// Set would, state as the mesh reconciler would) and starts its posture
// engine. The component is started by start.
func newNode(t testing.TB, name string, i int) *node {
	t.Helper()
	n := &node{name: name, dir: t.TempDir()}
	n.st = openStore(t, n.dir)
	t.Cleanup(func() { n.st.Close() })
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	n.pub = k.PublicKey().String()
	commit(t, n.st, false, "/kedge/mesh/config/listen-port", 51820+i,
		"/kedge/mesh/config/addresses", []string{fmt.Sprintf("10.99.0.%d/24", i+1)},
		"/kedge/system/config/cluster", "home", "/kedge/system/config/role", "homelab")
	commit(t, n.st, true, "/kedge/mesh/state/public-key", n.pub, "/kedge/mesh/state/listen-port", 51820+i)
	eng, err := posture.New(n.st, posture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = eng.Run(ctx) })
	n.stops = append(n.stops, func() { cancel(); wg.Wait() })
	t.Cleanup(n.stop)
	return n
}

func (n *node) start(t testing.TB, e *env, o Options) {
	t.Helper()
	cfg, err := e.cl.Config("kedge:node:"+n.name, "kedge:daemons")
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.NodeName = cfg, n.name
	if o.Resync == 0 {
		o.Resync = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMin, o.RetryMax = 50*time.Millisecond, time.Second
	}
	if os.Getenv("KEDGE_KUBE_DEBUG") != "" {
		o.Logger = testLogger(t, n.name)
	}
	c, err := New(n.st, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.comp = c
	n.stops = append([]func(){func() { c.Close() }}, n.stops...)
}

func (n *node) stop() {
	for _, s := range n.stops {
		s()
	}
	n.stops = nil
}

// read runs fn over the node's tree.
func (n *node) read(fn func(l local)) {
	_ = n.st.Read(func(t *tree.Tree) error { fn(readLocal(t)); return nil })
}

func (n *node) local() local {
	var l local
	n.read(func(x local) { l = x })
	return l
}

// clusterState reads /kedge/posture/cluster/state: connected, last-sync.
func (n *node) clusterState() (bool, time.Time) {
	var connected bool
	var last time.Time
	_ = n.st.Read(func(t *tree.Tree) error {
		if k := t.Root().Sub("kedge"); k != nil {
			if p := k.Sub("posture"); p != nil {
				if c := p.Sub("cluster"); c != nil {
					if s := c.Sub("state"); s != nil {
						connected = s.Get("connected").BoolVal()
						if ns := s.Get("last-sync").UintVal(); ns != 0 {
							last = time.Unix(0, int64(ns))
						}
					}
				}
			}
		}
		return nil
	})
	return connected, last
}

func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
