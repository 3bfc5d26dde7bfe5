// Package posture owns the node's posture engine: it decides the effective
// posture level, and on every change runs the transition plan, an ordered
// list of steps registered by the parts of Kedge that own them (the VPP
// governance segment, the BPF posture map, the handshake policy, the
// overlay mesh, routes, the notary), timing each and writing the outcome to
// /kedge/posture/state and a bounded history. It also publishes the
// effective accords of all five levels under /kedge/accords/accord/state.
//
// # Effective level
//
// The effective level is the lowest (most restrictive) of:
//
//   - /kedge/posture/config/level (default 5), source "config";
//
//   - the level another program wrote into the pinned posture_level BPF
//     map, read through a LevelSource, source "bpf-map". The engine itself
//     writes the effective level into that map (the bpf-map step), so a
//     value equal to the one it last wrote is its own echo, not a request;
//     any other value 1..5 is an external request that holds until the map
//     shows another value the engine did not write (a governance daemon
//     relaxes by writing 5). 0 (never written) requests nothing. After a
//     foreign write the engine writes the effective level back into the
//     map even when the request did not change it (a 5 written while the
//     node is held at 2 must not loosen the shell's programs). A foreign
//     write of exactly the level the engine last wrote cannot be told from
//     its own and changes nothing, which is harmless: it asks for what is
//     already in effect.
//
//   - the cluster's level, /kedge/posture/cluster/config/level, which the
//     Kubernetes component (server/kube) mirrors from the cluster's
//     KedgeClusterPosture object, source "cluster". Absent: no request.
//     It is config in the tree, so a restart with the API unreachable
//     keeps the last level the cluster set.
//
// So the cluster can tighten a node but never loosen what its config or
// a local program asked for. On a tie config wins as the source, then the
// BPF map, then the cluster. Peer-session levels (Shellstream)
// govern individual sessions, not the node, and are not an input here.
//
// # Order
//
// Escalation (to a lower level) and convergence at the same level run the
// stages in DESIGN.md's order: VPP shared memory, BPF map, [forensic
// snapshot], handshake, mesh, routes, notary. The data plane tightens first;
// the level-1 forensic snapshot is taken right after the data-plane gates
// close and before anything is torn down, so it records the mesh and routes
// as they were when lockdown began. De-escalation restores reachability
// first (mesh, then routes over it), then reopens the session layer and the
// data-plane gates, and lowers notary fidelity last, so everything that
// happens while relaxing is still recorded at the stricter fidelity.
//
// # Durability
//
// The engine keeps one record in the store's meta (PutMeta): the level it
// applied, the level it last wrote to the BPF map, the standing external
// request, the transition in flight, and the snapshot. It writes the record
// twice per transition: once the data-plane gates (shm, BPF map) have
// moved, with the in-flight plan and, on escalation, the snapshot; and when
// the plan ends. The gates go first because they are the fast path (the
// VPP budget is 1 ms, an fsync here costs 5-15 ms) and because a crash
// before the first write loses nothing: the old record's level differs
// from the durable config level (and the pinned map), so the restart
// derives and runs the same plan. A crash after it resumes the recorded
// plan, with its sequence number. A plan with failed steps stays in flight
// and is retried with capped exponential backoff; steps are idempotent.
//
// Before the first escalation away from a level the engine asks every
// Snapshotter step for a record of what it has applied and keeps it until
// a de-escalation returns to that level; deeper escalations keep the first
// snapshot, and de-escalations hand it to Restore instead of Apply.
package posture
