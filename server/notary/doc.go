// Package notary is the node's notary: it turns what the node does into
// Quartermaster artifacts (kedge.quartermaster.v1) in an append-only,
// tamper-evident log (package ledger), with the fidelity the current
// posture level's accord asks for, and ships the log upstream (package
// upstream).
//
// What it records:
//
//   - every committed config transaction, as a NetworkMutationArtifact,
//     at every level. Mutations come from the store's change feed; the
//     store's commit record carries the writer, the tier, the posture
//     level and the values before the commit (see Annotator), and the
//     store keeps its log records until the notary has absorbed them
//     (CommitLog), so a mutation acknowledged to a client is recorded
//     even when the daemon dies before the notary flushed it: on restart
//     the notary catches up from the store's log.
//   - every push of configuration to network devices (the underlay's
//     executed mutations and drift repairs, RecordDevicePush), as a
//     NetworkMutationArtifact with device_push, at every level. It
//     returns once the artifact is durable, and records each push (mutation
//     id and queue sequence) once however often it is offered, across
//     restarts: the underlay retries and re-offers until it hears nil.
//   - Shellstream session transits (RecordTransit), sampled by session id
//     at the accord's share; a session once sampled is recorded to its
//     close, even if the level relaxes meanwhile.
//   - posture transitions (RecordTransition) and, at level 1, the
//     PostureForensicSnapshot (EmitForensic, the posture engine's
//     forensic step's emitter).
//
// One goroutine writes the log. Flushing (one write, one fdatasync, one
// signed checkpoint) follows the accord: batched at levels 5 to 3 (every
// BatchInterval or BatchEntries records), immediate at 2 (as soon as the
// queued records are written), and after every record at 1. The
// notary's posture step (Step) applies the accord; /kedge/notary/state
// shows the fidelity, the log and the upstream client.
//
// Recording a transit never blocks: a full queue drops it and counts the
// drop in the state.
package notary
