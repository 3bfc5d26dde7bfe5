package shellstream

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/session"
)

// ClientConfig is what an initiator brings to a handshake.
type ClientConfig struct {
	// SAT is a JWT-SVID whose audience is Audience.
	SAT string
	// Chain and Key are the X.509-SVID (leaf first) and its private key.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// Audience is the server identity the SAT was issued for; a CHALLENGE
	// naming another server ends the handshake.
	Audience      string
	Type          session.Type
	Node, Cluster string
	// Level is the initiator's posture level.
	Level uint8
}

// DeniedError is a DENY the server sent.
type DeniedError struct {
	Reason         pb.DenyReason
	Text           string
	EffectiveLevel uint32
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("shellstream handshake denied: %s: %s", e.Reason, e.Text)
}

// ClientSession is the initiator's end of a granted session. Recv is for
// one goroutine; Send, Announce and Close may be called from another (they
// share a lock).
type ClientSession struct {
	stream pb.ShellstreamService_SessionClient
	Grant  *pb.Grant

	mu  sync.Mutex
	seq uint64
	in  uint64
}

// Open runs the handshake on cc and returns the granted session, a
// *DeniedError, or the transport's error.
func Open(ctx context.Context, cc grpc.ClientConnInterface, cfg ClientConfig) (*ClientSession, error) {
	if cfg.Key == nil || len(cfg.Chain) == 0 {
		return nil, errors.New("open shellstream session: no X.509-SVID")
	}
	stream, err := pb.NewShellstreamServiceClient(cc).Session(ctx)
	if err != nil {
		return nil, fmt.Errorf("open shellstream session: %w", err)
	}
	cs := &ClientSession{stream: stream}
	nonce := make([]byte, 32)
	rand.Read(nonce) // never fails (Go 1.24+)
	pbType := TypeToProto(cfg.Type)
	if err := cs.send(&pb.SessionRequest{Frame: &pb.SessionRequest_AttestInit{AttestInit: &pb.AttestInit{
		Sat: cfg.SAT, SessionType: pbType, Node: cfg.Node, Cluster: cfg.Cluster,
		PostureLevel: uint32(cfg.Level), Nonce: nonce}}}); err != nil {
		return nil, fmt.Errorf("send attest-init: %w", err)
	}
	f, err := cs.Recv()
	if err != nil {
		return nil, fmt.Errorf("receive challenge: %w", err)
	}
	ch := f.GetChallenge()
	if ch == nil {
		stream.CloseSend()
		return nil, unexpected("challenge", f)
	}
	if ch.GetServerId() != cfg.Audience {
		stream.CloseSend()
		return nil, fmt.Errorf("open shellstream session: the server is %q, not %q", ch.GetServerId(), cfg.Audience)
	}
	digest := Transcript(nonce, ch.GetChallenge(), pbType, ch.GetServerId(), cfg.SAT)
	alg, sig, err := SignTranscript(cfg.Key, digest)
	if err != nil {
		return nil, err
	}
	chain := make([][]byte, len(cfg.Chain))
	for i, c := range cfg.Chain {
		chain[i] = c.Raw
	}
	if err := cs.send(&pb.SessionRequest{Frame: &pb.SessionRequest_AttestVerify{AttestVerify: &pb.AttestVerify{
		SvidChain: chain, Algorithm: alg, Signature: sig}}}); err != nil {
		// io.EOF: the server ended the stream first (an early DENY, on a
		// SAT it refused while we signed); Recv has its last frame.
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("send attest-verify: %w", err)
		}
	}
	if f, err = cs.Recv(); err != nil {
		return nil, fmt.Errorf("receive grant: %w", err)
	}
	if g := f.GetGrant(); g != nil {
		cs.Grant = g
		return cs, nil
	}
	stream.CloseSend()
	return nil, unexpected("grant", f)
}

func unexpected(want string, f *pb.SessionResponse) error {
	if d := f.GetDeny(); d != nil {
		return &DeniedError{Reason: d.GetReason(), Text: d.GetText(), EffectiveLevel: d.GetEffectiveLevel()}
	}
	return fmt.Errorf("open shellstream session: expected %s, got %s", want, responseKind(f))
}

func (cs *ClientSession) send(r *pb.SessionRequest) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.seq++
	r.Seq = cs.seq
	return cs.stream.Send(r)
}

// Recv returns the server's next frame (DATA, DRAIN, POSTURE-CHANGE,
// CLOSE); it checks the server's sequence numbers.
func (cs *ClientSession) Recv() (*pb.SessionResponse, error) {
	f, err := cs.stream.Recv()
	if err != nil {
		return nil, err
	}
	cs.in++
	if f.GetSeq() != cs.in {
		return nil, fmt.Errorf("receive shellstream frame: sequence %d, want %d", f.GetSeq(), cs.in)
	}
	return f, nil
}

// Send sends payload as one DATA frame.
func (cs *ClientSession) Send(payload []byte) error {
	return cs.send(&pb.SessionRequest{Frame: &pb.SessionRequest_Data{Data: &pb.Data{Payload: payload}}})
}

// Announce tells the server the initiator's posture level changed.
func (cs *ClientSession) Announce(level uint8) error {
	return cs.send(&pb.SessionRequest{Frame: &pb.SessionRequest_PostureChange{PostureChange: &pb.PostureChange{PostureLevel: uint32(level)}}})
}

// Close sends CLOSE and half-closes the stream; keep calling Recv until it
// returns an error to see the server's CLOSE.
func (cs *ClientSession) Close() error {
	err := cs.send(&pb.SessionRequest{Frame: &pb.SessionRequest_Close{Close: &pb.Close{Reason: pb.CloseReason_CLOSE_REASON_NORMAL, Text: "done"}}})
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return errors.Join(err, cs.stream.CloseSend())
}

// Raw returns the stream, for tests that must break the protocol.
func (cs *ClientSession) Raw() pb.ShellstreamService_SessionClient { return cs.stream }
