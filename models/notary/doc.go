// Package notary holds the notary's pure decisions, with no I/O: the
// fidelity each posture level's accord asks for (sampling share, flush
// mode, payload hashing, frame headers), whether a Shellstream session is
// sampled (deterministically by its id), the canonical hashes of tree
// values and of a commit's changes, and the building of Quartermaster
// artifacts (kedge.quartermaster.v1) from plain inputs. server/notary
// owns the log, the queue and the upstream shipping; it calls these.
package notary
