package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

// clients are the two REST clients the component uses: one for Kedge's
// own group, one for the core API (Nodes, Pods, Namespaces).
type clients struct {
	kedge rest.Interface
	core  rest.Interface
}

func newClients(cfg *rest.Config) (*clients, error) {
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register kedge types: %w", err)
	}
	kc := rest.CopyConfig(cfg)
	kc.GroupVersion = &v1.GroupVersion
	kc.APIPath = "/apis"
	kc.ContentType = runtime.ContentTypeJSON
	kc.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if kc.UserAgent == "" {
		kc.UserAgent = "kedge-daemon"
	}
	kedge, err := rest.RESTClientFor(kc)
	if err != nil {
		return nil, fmt.Errorf("create kedge API client: %w", err)
	}
	cc := rest.CopyConfig(cfg)
	if cc.UserAgent == "" {
		cc.UserAgent = "kedge-daemon"
	}
	cs, err := kubernetes.NewForConfig(cc)
	if err != nil {
		return nil, fmt.Errorf("create core API client: %w", err)
	}
	return &clients{kedge: kedge, core: cs.CoreV1().RESTClient()}, nil
}

// Informers' list-watches. Pods are only those bound to this node, the
// Node only this one: the daemon reads nothing else of them.
func (c *clients) kedgeNodesLW() cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.kedge, v1.ResourceNodes, "", func(*metav1.ListOptions) {})
}

func (c *clients) posturesLW(name string) cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.kedge, v1.ResourcePostures, "", func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	})
}

func (c *clients) podsLW(node string) cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.core, "pods", "", func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	})
}

func (c *clients) nodeLW(node string) cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.core, "nodes", "", func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	})
}

func (c *clients) namespacesLW() cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c.core, "namespaces", "", func(*metav1.ListOptions) {})
}

// requestTimeout bounds each write, so a hung API never holds the loop.
const requestTimeout = 10 * time.Second

// createNode creates this node's KedgeNode (status is set separately: the
// status subresource ignores it on create). An existing one is fine.
func (c *clients) createNode(ctx context.Context, name string, owner *corev1.Node) error {
	kn := &v1.KedgeNode{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "KedgeNode"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	if owner != nil {
		// The garbage collector removes the KedgeNode with its Node, so a
		// node that leaves the cluster leaves every mesh.
		kn.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: owner.Name, UID: owner.UID}}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := c.kedge.Post().Resource(v1.ResourceNodes).Body(kn).Do(ctx).Error()
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create KedgeNode %s: %w", name, err)
	}
	return nil
}

// applyNodeStatus writes this node's KedgeNode status by server-side
// apply.
func (c *clients) applyNodeStatus(ctx context.Context, name string, st v1.KedgeNodeStatus) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": v1.GroupVersion.String(), "kind": "KedgeNode",
		"metadata": map[string]any{"name": name}, "status": st,
	})
	if err != nil {
		return fmt.Errorf("encode KedgeNode status: %w", err)
	}
	return c.apply(ctx, v1.ResourceNodes, name, "kedge-daemon", body)
}

// applyPostureStatus writes this node's entry of the posture object's
// status. The field manager is per node: server-side apply merges the
// entries (a map list keyed by name) and each node owns only its own.
func (c *clients) applyPostureStatus(ctx context.Context, object string, np v1.NodePosture) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": v1.GroupVersion.String(), "kind": "KedgeClusterPosture",
		"metadata": map[string]any{"name": object},
		"status":   map[string]any{"nodes": []v1.NodePosture{np}},
	})
	if err != nil {
		return fmt.Errorf("encode posture status: %w", err)
	}
	return c.apply(ctx, v1.ResourcePostures, object, FieldManager(np.Name), body)
}

// FieldManager is the server-side apply field manager of a node's
// posture status entry.
func FieldManager(node string) string { return "kedge-node-" + node }

func (c *clients) apply(ctx context.Context, resource, name, manager string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := c.kedge.Patch(types.ApplyPatchType).Resource(resource).Name(name).SubResource("status").
		Param("fieldManager", manager).Param("force", "true").Body(body).Do(ctx).Error()
	if err != nil {
		return fmt.Errorf("apply %s/%s status: %w", resource, name, err)
	}
	return nil
}
