package notary

import (
	"crypto/sha256"
	"encoding/binary"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Fidelity is how faithfully the notary records at one posture level: the
// seed's notarization table, read from the level's effective accord.
type Fidelity struct {
	Level uint8
	// SamplingPercent is the share of sessions whose transits are
	// recorded, 0..100. Mutations are always recorded.
	SamplingPercent uint8
	// Flush is accord.FlushBatched, FlushImmediate or FlushEveryRecord.
	Flush string
	// PayloadHashing lists every changed leaf of a mutation (never
	// truncated) and keeps the payload hashes of session frames and a hash
	// over each transit's metadata.
	PayloadHashing bool
	// FrameHeaders puts the Shellstream frame headers in session transits.
	// The seed ties them to the forensic level ("session metadata includes
	// full Shellstream frame headers"), so they follow payload hashing.
	FrameHeaders bool
}

// FidelityOf returns the fidelity an accord asks for. override, when not
// nil, replaces the sampling share at every level
// (/kedge/notary/config/sampling-percent-override); values above 100 are
// taken as 100.
func FidelityOf(a accord.Accord, override *uint8) Fidelity {
	f := Fidelity{
		Level:           a.Level,
		SamplingPercent: min(a.NotarySamplingPercent, 100),
		Flush:           a.NotaryFlush,
		PayloadHashing:  a.NotaryPayloadHashing,
		FrameHeaders:    a.NotaryPayloadHashing,
	}
	if override != nil {
		f.SamplingPercent = min(*override, 100)
	}
	switch f.Flush {
	case accord.FlushBatched, accord.FlushImmediate, accord.FlushEveryRecord:
	default:
		// An accord this code does not understand flushes as strictly as
		// it can: losing records is worse than syncing often.
		f.Flush = accord.FlushEveryRecord
	}
	return f
}

// Proto returns the fidelity as recorded in a LogEntry.
func (f Fidelity) Proto() *qmv1.Fidelity {
	return &qmv1.Fidelity{
		SamplingPercent: uint32(f.SamplingPercent),
		FlushMode:       FlushMode(f.Flush),
		PayloadHashing:  f.PayloadHashing,
		FrameHeaders:    f.FrameHeaders,
	}
}

// FlushMode maps an accord flush mode to its proto enum.
func FlushMode(s string) qmv1.FlushMode {
	switch s {
	case accord.FlushBatched:
		return qmv1.FlushMode_FLUSH_MODE_BATCHED
	case accord.FlushImmediate:
		return qmv1.FlushMode_FLUSH_MODE_IMMEDIATE
	case accord.FlushEveryRecord:
		return qmv1.FlushMode_FLUSH_MODE_EVERY_RECORD
	}
	return qmv1.FlushMode_FLUSH_MODE_UNSPECIFIED
}

// sampleDomain separates the sampling hash from every other use of
// SHA-256 over a session id.
const sampleDomain = "kedge-notary-sample\x00"

// SampleBucket places a session in one of 100 buckets, the same on every
// node and every run: the first 8 bytes of SHA-256 over the id, modulo
// 100.
func SampleBucket(sessionID string) uint8 {
	h := sha256.Sum256([]byte(sampleDomain + sessionID))
	return uint8(binary.BigEndian.Uint64(h[:8]) % 100)
}

// Sampled reports whether a session's transits are recorded at a sampling
// share. It depends only on the id and the share, and a session sampled at
// one share is sampled at every higher one, so escalating never drops a
// session that was being recorded. (De-escalating can; the notary keeps
// the sessions it started recording, see server/notary.)
func Sampled(sessionID string, percent uint8) bool {
	return SampleBucket(sessionID) < percent
}
