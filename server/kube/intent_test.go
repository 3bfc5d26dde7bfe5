package kube

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

const (
	keyA = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	keyB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
)

func kn(name, key string, addrs ...string) *v1.KedgeNode {
	return &v1.KedgeNode{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.KedgeNodeStatus{PublicKey: key, Endpoint: "192.0.2.1:51820", OverlayAddresses: addrs, Cluster: "home"}}
}

// render turns ops into "kind path" lines, so a test reads what a sync
// would write.
func render(o ops) []string {
	var out []string
	for _, op := range o {
		kind := map[store.OpKind]string{store.OpDelete: "del", store.OpUpdate: "set"}[op.Kind]
		out = append(out, kind+" "+tree.RenderPath(op.Path))
	}
	return out
}

func TestWantPeersSkipsSelfKeylessAndDeleting(t *testing.T) {
	now := metav1.Now()
	gone := kn("c", keyB)
	gone.DeletionTimestamp = &now
	got := wantPeers("self", []*v1.KedgeNode{kn("self", keyA), kn("a", keyA, "10.9.0.2/32", "10.9.0.1/32"), kn("b", ""), gone})
	want := map[string]peer{"a": {Name: "a", PublicKey: keyA, Endpoint: "192.0.2.1:51820",
		AllowedIPs: []string{"10.9.0.1/32", "10.9.0.2/32"}, Cluster: "home", Owner: OwnerKube}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("wantPeers (-want +got):\n%s", d)
	}
}

// TestPeerOpsLocalWins: the component adds and updates its own peers and
// removes the ones whose KedgeNode is gone, but never touches a peer a
// local Set wrote (no owner or another owner), even one with the name of
// a cluster node.
func TestPeerOpsLocalWins(t *testing.T) {
	have := map[string]peer{
		"local":   {Name: "local", PublicKey: keyA},                                // written by an operator
		"pinned":  {Name: "pinned", PublicKey: keyB, Owner: "ops"},                 // a cluster node, overridden locally
		"same":    {Name: "same", PublicKey: keyA, Owner: OwnerKube, Cluster: "x"}, // up to date
		"stale":   {Name: "stale", PublicKey: keyA, Owner: OwnerKube},              // key changed in the cluster
		"left":    {Name: "left", PublicKey: keyA, Owner: OwnerKube},               // KedgeNode deleted
		"unowned": {Name: "unowned", PublicKey: keyA, Owner: ""},
	}
	want := map[string]peer{
		"pinned": {Name: "pinned", PublicKey: keyA, Owner: OwnerKube},
		"same":   {Name: "same", PublicKey: keyA, Owner: OwnerKube, Cluster: "x"},
		"stale":  {Name: "stale", PublicKey: keyB, Owner: OwnerKube},
		"new":    {Name: "new", PublicKey: keyB, Owner: OwnerKube, AllowedIPs: []string{"10.9.0.3/32"}},
		"local":  {Name: "local", PublicKey: keyB, Owner: OwnerKube},
	}
	got := map[string]bool{}
	for _, l := range render(peerOps(have, want)) {
		got[l] = true
	}
	for _, must := range []string{
		"set /kedge/mesh/peers/peer[name=new]/config/public-key",
		"set /kedge/mesh/peers/peer[name=new]/config/allowed-ips",
		"set /kedge/mesh/peers/peer[name=new]/config/owner",
		"set /kedge/mesh/peers/peer[name=stale]/config/public-key",
		"del /kedge/mesh/peers/peer[name=left]",
	} {
		if !got[must] {
			t.Errorf("missing %q in %v", must, got)
		}
	}
	for l := range got {
		for _, untouched := range []string{"[name=local]", "[name=pinned]", "[name=same]", "[name=unowned]"} {
			if strings.Contains(l, untouched) {
				t.Errorf("touched a peer it must leave alone: %s", l)
			}
		}
	}
}

// TestWantPodCapsTier: a pod gets what its annotations ask for, its tier
// capped by the namespace's max-tier label; without the label, or without
// the Pod, it gets the lowest tier; bad annotations grant nothing.
func TestWantPodCapsTier(t *testing.T) {
	have := podMeta{ContainerID: "c1", IfName: "eth0", Namespace: "ns", Name: "p",
		Tier: "master", AllowedMode: "underlay", AllowedTargets: []string{"0.0.0.0/0"}} // what CNI_ARGS claimed
	pod := func(ann map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: ann}}
	}
	ns := func(cap string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}
		if cap != "" {
			n.Labels = map[string]string{v1.LabelMaxTier: cap}
		}
		return n
	}
	full := map[string]string{v1.AnnotationTier: "master", v1.AnnotationAllowedMode: "underlay",
		v1.AnnotationAllowedTargets: "10.1.2.3/16, 192.0.2.0/24,10.1.0.0/16"}
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		ns       *corev1.Namespace
		tier     string
		mode     string
		targets  []string
		badCount int
	}{
		{"no pod", nil, ns("master"), "observer", "overlay", nil, 0},
		{"no label", pod(full), ns(""), "observer", "underlay", []string{"10.1.0.0/16", "192.0.2.0/24"}, 0},
		{"capped", pod(full), ns("operator"), "operator", "underlay", []string{"10.1.0.0/16", "192.0.2.0/24"}, 0},
		{"granted", pod(full), ns("master"), "master", "underlay", []string{"10.1.0.0/16", "192.0.2.0/24"}, 0},
		{"below cap", pod(map[string]string{v1.AnnotationTier: "operator"}), ns("site-owner"), "operator", "overlay", nil, 0},
		{"no annotations", pod(nil), ns("master"), "observer", "overlay", nil, 0},
		{"bad values", pod(map[string]string{v1.AnnotationTier: "root", v1.AnnotationAllowedMode: "both",
			v1.AnnotationAllowedTargets: "10.0.0.0/8,nonsense"}), ns("bogus"), "observer", "overlay", nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := wantPod(have, tc.pod, tc.ns)
			want := podMeta{ContainerID: "c1", IfName: "eth0", Namespace: "ns", Name: "p",
				Tier: tc.tier, AllowedMode: tc.mode, AllowedTargets: tc.targets}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("wantPod (-want +got):\n%s", d)
			}
			if len(bad) != tc.badCount {
				t.Errorf("%d errors %v, want %d", len(bad), errors.Join(bad...), tc.badCount)
			}
		})
	}
}

func TestEndpointOf(t *testing.T) {
	node := func(ann string, addrs ...corev1.NodeAddress) *corev1.Node {
		n := &corev1.Node{Status: corev1.NodeStatus{Addresses: addrs}}
		if ann != "" {
			n.Annotations = map[string]string{v1.AnnotationEndpoint: ann}
		}
		return n
	}
	internal := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}
	external := corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "2001:db8::5"}
	for _, tc := range []struct {
		name     string
		override string
		node     *corev1.Node
		port     uint16
		want     string
	}{
		{"internal ip", "", node("", external, internal), 51820, "10.0.0.5:51820"},
		{"external ip", "", node("", external), 51820, "[2001:db8::5]:51820"},
		{"annotation host", "", node("198.51.100.7", internal), 51820, "198.51.100.7:51820"},
		{"annotation host:port", "", node("198.51.100.7:4500", internal), 51820, "198.51.100.7:4500"},
		{"override wins", "203.0.113.1", node("198.51.100.7", internal), 51821, "203.0.113.1:51821"},
		{"no port yet", "", node("", internal), 0, ""},
		{"no node", "", nil, 51820, ""},
	} {
		if got := endpointOf(tc.override, tc.node, tc.port); got != tc.want {
			t.Errorf("%s: endpointOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}
