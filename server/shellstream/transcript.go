package shellstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
)

// transcriptLabel separates this signature from any other use of the
// SVID key.
const transcriptLabel = "kedge-shellstream-v1 attest-verify"

// Transcript is the digest the initiator signs in ATTEST-VERIFY: it binds
// the proof to this handshake (both nonces), the session type, the server
// it was meant for, and the SAT presented with it.
func Transcript(nonce, challenge []byte, typ pb.SessionType, serverID, sat string) [32]byte {
	h := sha256.New()
	h.Write([]byte(transcriptLabel))
	satSum := sha256.Sum256([]byte(sat))
	for _, part := range [][]byte{nonce, challenge, []byte(typ.String()), []byte(serverID), satSum[:]} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// SignTranscript signs a transcript digest with an SVID key.
func SignTranscript(key crypto.Signer, digest [32]byte) (pb.SignatureAlgorithm, []byte, error) {
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		return pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_ECDSA_SHA256, sig, err
	case ed25519.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.Hash(0))
		return pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519, sig, err
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
		return pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_RSA_PSS_SHA256, sig, err
	}
	return 0, nil, fmt.Errorf("sign transcript: unsupported key type %T", key.Public())
}

var errBadSignature = errors.New("signature does not verify")

// verifyTranscript checks a proof of possession against the leaf's key.
// The algorithm must match the key type, so a signature cannot be
// reinterpreted under a weaker scheme.
func verifyTranscript(pub crypto.PublicKey, alg pb.SignatureAlgorithm, digest [32]byte, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg != pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_ECDSA_SHA256 {
			return fmt.Errorf("verify proof: algorithm %s for an ECDSA key", alg)
		}
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return fmt.Errorf("verify proof: %w", errBadSignature)
		}
	case ed25519.PublicKey:
		if alg != pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519 {
			return fmt.Errorf("verify proof: algorithm %s for an Ed25519 key", alg)
		}
		if !ed25519.Verify(k, digest[:], sig) {
			return fmt.Errorf("verify proof: %w", errBadSignature)
		}
	case *rsa.PublicKey:
		if alg != pb.SignatureAlgorithm_SIGNATURE_ALGORITHM_RSA_PSS_SHA256 {
			return fmt.Errorf("verify proof: algorithm %s for an RSA key", alg)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("verify proof: RSA key of %d bits", k.N.BitLen())
		}
		if err := rsa.VerifyPSS(k, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			return fmt.Errorf("verify proof: %w", errBadSignature)
		}
	default:
		return fmt.Errorf("verify proof: unsupported key type %T", pub)
	}
	return nil
}
