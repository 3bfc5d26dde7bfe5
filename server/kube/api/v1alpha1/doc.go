// Package v1alpha1 holds the Go types of Kedge's custom resources, group
// kedge.guildhouse.dev: KedgeNode (one per node, published by that node's
// daemon: its WireGuard key, endpoint, overlay addresses, cluster and role)
// and KedgeClusterPosture (the cluster's posture level, and each node's
// effective level in its status). Both are cluster-scoped. The deepcopy
// methods and the CRD manifests in deploy/kubernetes/crds are generated
// from these types by `make generate` (controller-gen).
//
// +kubebuilder:object:generate=true
// +groupName=kedge.guildhouse.dev
package v1alpha1
