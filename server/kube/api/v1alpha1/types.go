package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations and labels Kedge reads from other objects.
const (
	// AnnotationEndpoint on a Node (or the daemon's flag) names the
	// address peers reach this node's WireGuard device at, when the
	// Node's own addresses are not the right one (NAT, a second NIC).
	AnnotationEndpoint = "kedge.guildhouse.dev/endpoint"
	// AnnotationTier, AnnotationAllowedMode and AnnotationAllowedTargets
	// on a Pod are its shell_state: the tier its workload acts at, the
	// network mode it may use (overlay or underlay) and the prefixes it
	// may reach (comma separated).
	AnnotationTier           = "kedge.guildhouse.dev/tier"
	AnnotationAllowedMode    = "kedge.guildhouse.dev/allowed-mode"
	AnnotationAllowedTargets = "kedge.guildhouse.dev/allowed-targets"
	// LabelMaxTier on a Namespace caps the tier its pods can claim: a
	// pod's annotation is only as good as the namespace lets it be,
	// since anyone who may create pods there may write it. Without the
	// label a namespace's pods get the lowest tier.
	LabelMaxTier = "kedge.guildhouse.dev/max-tier"
)

// KedgeNode is one node's entry in the mesh, named after the node. The
// node's own daemon creates it and writes its status; every other daemon
// reads it and makes the node a WireGuard peer.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=kn
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.status.cluster`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.role`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Level",type=integer,JSONPath=`.status.effectiveLevel`
type KedgeNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KedgeNodeSpec   `json:"spec,omitempty"`
	Status KedgeNodeStatus `json:"status,omitempty"`
}

// KedgeNodeSpec is what the cluster's operators say about a node.
type KedgeNodeSpec struct {
	// Critical marks the node's tunnel as management traffic that is kept
	// at posture level 2 (the peer's critical leaf in every other node's
	// tree).
	// +optional
	Critical bool `json:"critical,omitempty"`
}

// KedgeNodeStatus is what the node's daemon publishes about itself.
type KedgeNodeStatus struct {
	// PublicKey is the node's WireGuard public key (base64).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$`
	PublicKey string `json:"publicKey,omitempty"`
	// Endpoint is where peers reach the node's WireGuard device
	// (host:port, IPv6 in brackets).
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Endpoint string `json:"endpoint,omitempty"`
	// OverlayAddresses are the node's addresses on the mesh (prefixes);
	// peers route them into its tunnel.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	OverlayAddresses []string `json:"overlayAddresses,omitempty"`
	// Cluster is the cluster the node belongs to (homelab, cloud anchor).
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Role is the node's role: homelab, cloud-anchor or appliance.
	// +optional
	// +kubebuilder:validation:Enum=homelab;cloud-anchor;appliance
	Role string `json:"role,omitempty"`
	// EffectiveLevel is the posture level in effect on the node.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	EffectiveLevel int32 `json:"effectiveLevel,omitempty"`
}

// KedgeNodeList is a list of KedgeNodes.
//
// +kubebuilder:object:root=true
type KedgeNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KedgeNode `json:"items"`
}

// KedgeClusterPosture sets the posture level of every node in the cluster.
// A node's effective level is the strictest of this level, its local
// configuration and its BPF map: the cluster can tighten a node, never
// loosen it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=kcp
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Level",type=integer,JSONPath=`.spec.level`
type KedgeClusterPosture struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KedgeClusterPostureSpec   `json:"spec"`
	Status KedgeClusterPostureStatus `json:"status,omitempty"`
}

// KedgeClusterPostureSpec is the cluster's intended posture.
type KedgeClusterPostureSpec struct {
	// Level is the cluster's posture level, 5 (normal) to 1 (lockdown).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	Level int32 `json:"level"`
}

// KedgeClusterPostureStatus lists what each node applied. Each node writes
// only its own entry (server-side apply, one field manager per node), so
// nodes writing at once never lose each other's updates.
type KedgeClusterPostureStatus struct {
	// Nodes holds one entry per node, keyed by node name.
	// +optional
	// +listType=map
	// +listMapKey=name
	Nodes []NodePosture `json:"nodes,omitempty"`
}

// NodePosture is one node's posture as that node reports it.
type NodePosture struct {
	// Name is the node's name.
	Name string `json:"name"`
	// ObservedLevel is the cluster level the node last mirrored.
	// +optional
	ObservedLevel int32 `json:"observedLevel,omitempty"`
	// EffectiveLevel is the level in effect on the node.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	EffectiveLevel int32 `json:"effectiveLevel"`
	// Source is what set the effective level: config, cluster or bpf-map.
	// +optional
	Source string `json:"source,omitempty"`
	// LastTransitionTime is when the node's effective level last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// KedgeClusterPostureList is a list of KedgeClusterPostures.
//
// +kubebuilder:object:root=true
type KedgeClusterPostureList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KedgeClusterPosture `json:"items"`
}
