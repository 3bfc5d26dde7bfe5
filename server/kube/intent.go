package kube

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

// Tiers from highest to lowest (kt:tier).
var tiers = []string{"master", "site-owner", "operator", "observer"}

// lowestTier is what a pod gets when nothing in the cluster grants more.
const lowestTier = "observer"

func tierRank(t string) int { return slices.Index(tiers, t) } // -1: unknown

// wantPeers is the peer set the cluster describes for node self: every
// other KedgeNode that has published a public key.
func wantPeers(self string, nodes []*v1.KedgeNode) map[string]peer {
	out := map[string]peer{}
	for _, n := range nodes {
		if n.Name == self || n.Status.PublicKey == "" || n.DeletionTimestamp != nil {
			continue
		}
		ips := slices.Clone(n.Status.OverlayAddresses)
		slices.Sort(ips)
		out[n.Name] = peer{Name: n.Name, PublicKey: n.Status.PublicKey, Endpoint: n.Status.Endpoint,
			AllowedIPs: ips, Cluster: n.Status.Cluster, Critical: n.Spec.Critical, Owner: OwnerKube}
	}
	return out
}

// peerOps turns the tree's peers into want: managed peers are created,
// updated and removed; local peers (another owner, or none) are never
// touched, even when the cluster has a node of the same name.
func peerOps(have, want map[string]peer) ops {
	var o ops
	for _, name := range sortedKeys(want) {
		w := want[name]
		h, ok := have[name]
		if ok && h.Owner != OwnerKube {
			continue // a local entry wins
		}
		if ok && h.equal(w) {
			continue
		}
		o.putPeer(w)
	}
	for _, name := range sortedKeys(have) {
		if _, ok := want[name]; !ok && have[name].Owner == OwnerKube {
			o.delPeer(name)
		}
	}
	return o
}

// wantPod is the shell_state the cluster grants a registered pod: the
// Pod's annotations, its tier capped by its namespace's max-tier label.
// pod nil means the Pod does not exist (on this node): the lowest tier,
// the default mode, no targets. Bad annotations are reported and grant
// nothing beyond the defaults.
func wantPod(have podMeta, pod *corev1.Pod, ns *corev1.Namespace) (podMeta, []error) {
	w := have
	w.Tier, w.AllowedMode, w.AllowedTargets = lowestTier, "overlay", nil
	if pod == nil {
		return w, nil
	}
	var errs []error
	capRank := tierRank(lowestTier)
	if ns != nil {
		if c, ok := ns.Labels[v1.LabelMaxTier]; ok {
			if r := tierRank(c); r >= 0 {
				capRank = r
			} else {
				errs = append(errs, fmt.Errorf("namespace %s: label %s: unknown tier %q", ns.Name, v1.LabelMaxTier, c))
			}
		}
	}
	if t, ok := pod.Annotations[v1.AnnotationTier]; ok {
		if r := tierRank(t); r >= 0 {
			w.Tier = tiers[max(r, capRank)]
		} else {
			errs = append(errs, fmt.Errorf("pod %s/%s: annotation %s: unknown tier %q", pod.Namespace, pod.Name, v1.AnnotationTier, t))
		}
	}
	if m, ok := pod.Annotations[v1.AnnotationAllowedMode]; ok {
		if m == "overlay" || m == "underlay" {
			w.AllowedMode = m
		} else {
			errs = append(errs, fmt.Errorf("pod %s/%s: annotation %s: unknown mode %q", pod.Namespace, pod.Name, v1.AnnotationAllowedMode, m))
		}
	}
	if s, ok := pod.Annotations[v1.AnnotationAllowedTargets]; ok && strings.TrimSpace(s) != "" {
		var targets []string
		for _, f := range strings.Split(s, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s/%s: annotation %s: %w", pod.Namespace, pod.Name, v1.AnnotationAllowedTargets, err))
				targets = nil
				break
			}
			targets = append(targets, p.Masked().String())
		}
		slices.Sort(targets)
		w.AllowedTargets = slices.Compact(targets)
	}
	return w, errs
}

func podEqual(a, b podMeta) bool {
	return a.Tier == b.Tier && a.AllowedMode == b.AllowedMode && slices.Equal(a.AllowedTargets, b.AllowedTargets)
}

// endpointOf is where peers reach this node: override if set, else the
// Node's endpoint annotation, else its InternalIP, else its ExternalIP;
// a host without a port gets the mesh's listen port. "" when nothing is
// known (no Node object, no listen port).
func endpointOf(override string, node *corev1.Node, port uint16) string {
	host := override
	if host == "" && node != nil {
		host = node.Annotations[v1.AnnotationEndpoint]
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			if host != "" {
				break
			}
			for _, a := range node.Status.Addresses {
				if a.Type == t {
					host = a.Address
					break
				}
			}
		}
	}
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(port)))
}

// hostPrefixes turns the mesh interface's addresses (10.9.0.3/24) into
// what peers route to this node (10.9.0.3/32): the subnet is everyone's,
// each node owns only its address. Unparsable entries are dropped (the
// tree's schema already checked them).
func hostPrefixes(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		out = append(out, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()).String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
