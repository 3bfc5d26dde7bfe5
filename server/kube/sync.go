package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

// mirror is one round of the mirror loop: bring the tree in line with
// the informers' caches (peers, cluster level, pods) and write the
// component's state leaves. Parts whose informer has not listed yet are
// left alone.
func (c *Component) mirror(ctx context.Context) error {
	l, err := c.readLocal()
	if err != nil {
		return err
	}
	var errs []error
	if o := c.treeOps(l); len(o) > 0 {
		if _, err := c.st.Commit(ctx, o); err != nil {
			errs = append(errs, fmt.Errorf("commit cluster config: %w", err))
		}
	}
	if err := c.writeState(ctx, l); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// publishRound is one round of the publisher loop.
func (c *Component) publishRound(ctx context.Context) error {
	l, err := c.readLocal()
	if err != nil {
		return err
	}
	if err := c.publish(ctx, l); err != nil {
		c.setConnected(false)
		return err
	}
	return nil
}

func (c *Component) readLocal() (local, error) {
	var l local
	if err := c.st.Read(func(t *tree.Tree) error { l = readLocal(t); return nil }); err != nil {
		return l, fmt.Errorf("read tree: %w", err)
	}
	return l, nil
}

// treeOps is what the cluster changes in the tree.
func (c *Component) treeOps(l local) ops {
	var o ops
	if c.nodes.HasSynced() {
		o = append(o, peerOps(l.Peers, wantPeers(c.o.NodeName, c.kedgeNodes()))...)
	}
	if c.postures.HasSynced() {
		level, name := uint8(0), ""
		if p := c.posture(); p != nil && p.Spec.Level >= 1 && p.Spec.Level <= 5 {
			level, name = uint8(p.Spec.Level), p.Name
		}
		if level != l.ClusterLevel || name != l.ClusterObject {
			if level != l.ClusterLevel {
				c.log.Info("cluster posture level", "object", c.o.PostureObject, "from", l.ClusterLevel, "to", level)
			}
			o.clusterLevel(level, name)
		}
	}
	if c.pods.HasSynced() && c.namespaces.HasSynced() {
		for _, have := range l.Pods {
			if have.Namespace == "" || have.Name == "" {
				continue // not a Kubernetes pod
			}
			pod := getObj[*corev1.Pod](c.pods, have.Namespace+"/"+have.Name)
			ns := getObj[*corev1.Namespace](c.namespaces, have.Namespace)
			want, bad := wantPod(have, pod, ns)
			for _, err := range bad {
				c.log.Warn("pod metadata ignored", "err", err)
			}
			if !podEqual(have, want) {
				o.podMeta(want)
			}
		}
	}
	return o
}

// writeState publishes the node's endpoint and the mirror's health.
func (c *Component) writeState(ctx context.Context, l local) error {
	ep := l.Endpoint
	if c.o.Endpoint != "" || c.node.HasSynced() {
		ep = endpointOf(c.o.Endpoint, c.selfNode(), l.ListenPort)
	}
	rec := stateRecord{endpoint: ep, level: l.ClusterLevel, object: l.ClusterObject, connected: c.Connected()}
	heard := c.heard.Load()
	// last-sync moves at most once a resync period unless something else
	// changed: it is a liveness hint, not worth a commit per event.
	fresh := heard-c.lastHeard < int64(c.o.Resync)
	if c.wroteState && rec == c.lastState && ep == l.Endpoint && fresh {
		return nil
	}
	var o ops
	o.endpoint(ep)
	var last time.Time
	if heard != 0 {
		last = time.Unix(0, heard)
	}
	o.clusterState(rec.level, rec.object, rec.connected, last)
	if _, err := c.st.CommitState(ctx, o); err != nil {
		return fmt.Errorf("commit kube state: %w", err)
	}
	c.lastState, c.wroteState, c.lastHeard = rec, true, heard
	return nil
}

// publish writes this node's KedgeNode and its posture status entry when
// they differ from what the API shows.
func (c *Component) publish(ctx context.Context, l local) error {
	var errs []error
	// The Node must be known first: it owns the KedgeNode created here
	// (and gives the endpoint).
	if c.nodes.HasSynced() && c.node.HasSynced() {
		want := v1.KedgeNodeStatus{PublicKey: l.PublicKey, Endpoint: endpointOf(c.o.Endpoint, c.selfNode(), l.ListenPort),
			OverlayAddresses: hostPrefixes(l.Addresses), Cluster: l.Cluster, Role: l.Role,
			EffectiveLevel: int32(l.EffectiveLevel)}
		self := getObj[*v1.KedgeNode](c.nodes, c.o.NodeName)
		if self == nil {
			if err := c.api.createNode(ctx, c.o.NodeName, c.selfNode()); err != nil {
				errs = append(errs, err)
			}
		}
		// Apply when the API shows another status, or, before the cache
		// has our object, unless this very status was applied already.
		stale := self != nil && !nodeStatusEqual(self.Status, want)
		unknown := self == nil && (c.lastNode == nil || !nodeStatusEqual(*c.lastNode, want))
		if stale || unknown {
			if err := c.api.applyNodeStatus(ctx, c.o.NodeName, want); err != nil {
				errs = append(errs, err)
			} else {
				c.lastNode = &want
			}
		}
	}
	if p := c.posture(); p != nil && l.EffectiveLevel != 0 {
		want := v1.NodePosture{Name: c.o.NodeName, ObservedLevel: int32(l.ClusterLevel),
			EffectiveLevel: int32(l.EffectiveLevel), Source: l.Source}
		if !l.LastTransition.IsZero() {
			t := metav1.NewTime(l.LastTransition)
			want.LastTransitionTime = &t
		}
		var have *v1.NodePosture
		for i := range p.Status.Nodes {
			if p.Status.Nodes[i].Name == c.o.NodeName {
				have = &p.Status.Nodes[i]
			}
		}
		if have == nil || !nodePostureEqual(*have, want) {
			if err := c.api.applyPostureStatus(ctx, p.Name, want); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func nodeStatusEqual(a, b v1.KedgeNodeStatus) bool {
	return a.PublicKey == b.PublicKey && a.Endpoint == b.Endpoint && slices.Equal(a.OverlayAddresses, b.OverlayAddresses) &&
		a.Cluster == b.Cluster && a.Role == b.Role && a.EffectiveLevel == b.EffectiveLevel
}

func nodePostureEqual(a, b v1.NodePosture) bool {
	ta, tb := a.LastTransitionTime, b.LastTransitionTime
	sameTime := (ta == nil) == (tb == nil) && (ta == nil || ta.Unix() == tb.Unix())
	return a.Name == b.Name && a.ObservedLevel == b.ObservedLevel && a.EffectiveLevel == b.EffectiveLevel &&
		a.Source == b.Source && sameTime
}

func (c *Component) kedgeNodes() []*v1.KedgeNode {
	var out []*v1.KedgeNode
	for _, o := range c.nodes.GetStore().List() {
		if n, ok := o.(*v1.KedgeNode); ok {
			out = append(out, n)
		}
	}
	return out
}

func (c *Component) posture() *v1.KedgeClusterPosture {
	return getObj[*v1.KedgeClusterPosture](c.postures, c.o.PostureObject)
}

func (c *Component) selfNode() *corev1.Node { return getObj[*corev1.Node](c.node, c.o.NodeName) }

// getObj returns the cached object with key (namespace/name, or name for
// cluster-scoped objects), or nil.
func getObj[T any](inf cache.SharedIndexInformer, key string) T {
	var zero T
	o, ok, err := inf.GetStore().GetByKey(key)
	if err != nil || !ok {
		return zero
	}
	t, _ := o.(T)
	return t
}
