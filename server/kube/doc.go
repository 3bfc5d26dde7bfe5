// Package kube makes Kubernetes the cluster engine of a Kedge node: it
// publishes the node in its KedgeNode object and builds the node's mesh
// peers from everyone else's, mirrors the cluster's KedgeClusterPosture
// level into the node's tree and reports the node's effective level in
// that object's status, and fills each registered pod's tier, allowed
// mode and allowed targets from the Pod's annotations (capped by its
// namespace) instead of trusting the CNI plugin's arguments.
//
// # The tree stays the node's truth
//
// Everything the component learns goes into the node's own tree as
// config, through the store's validation, so gNMI shows it and the
// reconcilers act on it as on any other write; nothing here touches the
// kernel. The API is not in the data path: informers (with a periodic
// resync) keep the last objects they saw, so while the API is unreachable
// the node keeps its peers and level and serves gNMI as before, and when
// it returns the informers relist and the component converges. Until an
// informer has listed once the component changes nothing it derives from
// it: a daemon that starts with the API down does not mistake an empty
// cache for an empty cluster.
//
// # Precedence with local writes
//
//   - Peers: a peer the component manages carries owner "kube"
//     (/kedge/mesh/peers/peer/config/owner). It creates, updates and
//     removes only those. A peer written locally (no owner, or another
//     owner) always wins: the component never changes or removes it, even
//     when a KedgeNode of the same name exists. To override a managed
//     peer, write it with another owner; to hand it back, delete it.
//   - Posture: the cluster's level goes to /kedge/posture/cluster/config,
//     which the posture engine treats as a third source beside the local
//     config level and the BPF map: the strictest wins, so the cluster
//     tightens a node but never loosens what the node or a local program
//     asked for. The component rewrites the mirror whenever it differs
//     from the object, and removes it when the object is deleted.
//   - Pods: the component is a system writer. For each pod in /kedge/pods
//     with a namespace and name it writes tier, allowed-mode and
//     allowed-targets from the Pod's annotations, the tier capped by the
//     namespace's kedge.guildhouse.dev/max-tier label (the lowest tier,
//     observer, when the namespace has none or the pod is not found), so
//     a pod creator cannot claim more than the cluster's admins granted
//     its namespace.
//
// # Writes to the API
//
// The node creates its own KedgeNode (named after the node) and writes its
// status: public key, endpoint, overlay addresses (the mesh interface's
// addresses as /32 or /128: what peers route into its tunnel), cluster,
// role and effective level. The endpoint is the daemon's --kube-endpoint if set,
// else the Node's kedge.guildhouse.dev/endpoint annotation, else its
// InternalIP (then ExternalIP), with the mesh's listen port; it is also
// published at /kedge/mesh/state/endpoint. Each node writes only its own
// entry of the posture object's status, by server-side apply with a field
// manager of its own, so nodes writing at once never lose each other's
// entries. The RBAC and admission policy in deploy/kubernetes limit a
// daemon to exactly these objects.
package kube
