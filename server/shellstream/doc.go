// Package shellstream terminates Shellstream sessions: the attested
// handshake (ATTEST-INIT with a JWT-SVID, CHALLENGE, ATTEST-VERIFY with a
// proof of possession of the X.509-SVID key), the per-level admission
// rules of models/session, the live sessions and their DATA relay to a
// local endpoint per session type, the posture plan's handshake step that
// drains or terminates sessions when the level tightens, /kedge/sessions
// state, and transit events for the notary. It also holds the client side
// of the handshake (Open), which kedge-daemon shell and the tests use.
//
// # Verification
//
// Where a session's rules say cached (levels 5 and 4) a SAT is validated
// locally against the JWT bundles the Workload API streams, and a token
// validated once is remembered until it expires; where they say
// re-verified (3 and below) every handshake asks the SPIRE agent
// (ValidateJWTSVID) and the cache is neither read nor written. The
// X.509-SVID chain is checked against the streamed X.509 bundles and its
// SPIFFE ID must be the SAT's subject.
//
// # Levels
//
// A session is governed by the lower of the node's level and the level
// the initiator announces (ATTEST-INIT, then POSTURE-CHANGE frames), for
// its whole life. When either changes, the session is re-evaluated:
// kept (its effective level and capabilities are announced), drained
// (DRAIN with a deadline DrainTimeout away; it keeps relaying until then)
// or terminated (DRAIN with an immediate deadline, then CLOSE). Grants
// never widen mid-session.
//
// # Ownership and concurrency
//
// Each stream is served by its handler goroutine (handshake and the
// client-to-endpoint direction), a receiver, a sender and, after GRANT, an
// endpoint reader. The posture step and the state writer reach a session
// only through its mutex-guarded fields and its never-blocking control
// queue, so a client that stops reading cannot hold up a transition; the
// sender's watchdog ends such a session after SendTimeout.
package shellstream
