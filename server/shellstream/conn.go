package shellstream

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
)

// inFrame is what the receiver hands the handler: a frame, or why there
// is none (the stream ended, or a frame broke the protocol).
type inFrame struct {
	req *pb.SessionRequest
	err error
}

// errProtocol marks a frame that broke the protocol.
var errProtocol = errors.New("protocol violation")

// conn is one Session stream: its receiver and sender goroutines and the
// handshake; after GRANT a live session takes over its frames.
type conn struct {
	s      *Service
	stream pb.ShellstreamService_SessionServer
	local  bool
	addr   string
	out    *outbox
	in     chan inFrame
	stop   chan struct{} // closed when the handler returns
	abort  chan struct{} // closed when the client stopped reading
	once   sync.Once
	frames frameLog

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

// Session serves one Shellstream session.
func (s *Service) Session(stream pb.ShellstreamService_SessionServer) error {
	c := &conn{s: s, stream: stream, out: newOutbox(), in: make(chan inFrame, 1),
		stop: make(chan struct{}), abort: make(chan struct{})}
	c.local, c.addr = origin(stream)
	defer close(c.stop)
	go c.receive()
	go c.out.sender(stream.Send, c.stop, s.clock, s.opts.SendTimeout, c.stuck, c.sending, c.sent)

	l, err := c.run()
	if err == nil {
		// Let the last frames (DENY, CLOSE) reach the client, unless it
		// stopped reading.
		c.out.finish()
		select {
		case <-c.out.done:
		case <-c.abort:
			err = errStuck
		}
	}
	if l != nil {
		l.recordClose()
	}
	return err
}

var errStuck = status.Error(codes.ResourceExhausted, "shellstream: the client stopped reading")

func (c *conn) stuck() { c.once.Do(func() { close(c.abort) }) }

// origin reports whether the stream came over a loopback transport: the
// unix socket, or TCP from 127.0.0.0/8 or ::1.
func origin(stream pb.ShellstreamService_SessionServer) (bool, string) {
	p, ok := peer.FromContext(stream.Context())
	if !ok || p.Addr == nil {
		return false, ""
	}
	switch a := p.Addr.(type) {
	case *net.UnixAddr:
		return true, "unix:" + a.Name
	case *net.TCPAddr:
		return a.IP.IsLoopback(), a.String()
	}
	return false, p.Addr.String()
}

// receive reads frames until the stream ends or the handler returns.
func (c *conn) receive() {
	var seq uint64
	for {
		req, err := c.stream.Recv()
		f := inFrame{req: req, err: err}
		if err == nil {
			seq++
			c.framesIn.Add(1)
			n := len(req.GetData().GetPayload())
			c.bytesIn.Add(uint64(n))
			c.frames.add(FrameHeader{Inbound: true, Seq: req.GetSeq(), Kind: requestKind(req), PayloadBytes: n, Time: c.s.clock.Now()},
				req.GetData().GetPayload())
			switch size := proto.Size(req); {
			case size > c.s.opts.MaxFrameBytes:
				f = inFrame{err: fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", errProtocol, size, c.s.opts.MaxFrameBytes)}
			case req.GetSeq() != seq:
				f = inFrame{err: fmt.Errorf("%w: frame sequence %d, want %d", errProtocol, req.GetSeq(), seq)}
			}
		}
		select {
		case c.in <- f:
		case <-c.stop:
			return
		}
		if f.err != nil {
			return
		}
	}
}

// sending records a frame's header as the sender takes it.
func (c *conn) sending(f *pb.SessionResponse) {
	p := f.GetData().GetPayload()
	c.frames.add(FrameHeader{Seq: f.GetSeq(), Kind: responseKind(f), PayloadBytes: len(p), Time: c.s.clock.Now()}, p)
}

// sent counts a frame the sender delivered.
func (c *conn) sent(f *pb.SessionResponse) {
	c.framesOut.Add(1)
	c.bytesOut.Add(uint64(len(f.GetData().GetPayload())))
}

// run returns the session it served (nil when the handshake did not
// grant one) and the handler's error.
func (c *conn) run() (*live, error) {
	l, err := c.handshake()
	if l == nil {
		return nil, err
	}
	return l, l.serve()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (Go 1.24+)
	return b
}

func requestKind(r *pb.SessionRequest) string {
	switch r.GetFrame().(type) {
	case *pb.SessionRequest_AttestInit:
		return "attest-init"
	case *pb.SessionRequest_AttestVerify:
		return "attest-verify"
	case *pb.SessionRequest_Data:
		return "data"
	case *pb.SessionRequest_PostureChange:
		return "posture-change"
	case *pb.SessionRequest_Close:
		return "close"
	}
	return "empty"
}

func responseKind(r *pb.SessionResponse) string {
	switch r.GetFrame().(type) {
	case *pb.SessionResponse_Challenge:
		return "challenge"
	case *pb.SessionResponse_Grant:
		return "grant"
	case *pb.SessionResponse_Deny:
		return "deny"
	case *pb.SessionResponse_Data:
		return "data"
	case *pb.SessionResponse_Drain:
		return "drain"
	case *pb.SessionResponse_PostureChange:
		return "posture-change"
	case *pb.SessionResponse_Close:
		return "close"
	}
	return "empty"
}

// frameLog keeps frame headers for the notary while a session is governed
// by level 1; during the handshake it always keeps them (the level is not
// known before ATTEST-INIT is read), and take discards them unless the
// event is at level 1.
type frameLog struct {
	mu      sync.Mutex
	off     bool
	hdrs    []FrameHeader
	dropped uint64
}

// add records h; while recording, a DATA frame's payload is hashed
// (level 1 notarizes with full payload hashing), never kept.
func (f *frameLog) add(h FrameHeader, payload []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return
	}
	if len(f.hdrs) >= maxFrameHeaders {
		f.dropped++
		return
	}
	if len(payload) > 0 {
		sum := sha256.Sum256(payload)
		h.PayloadSHA256 = sum[:]
	}
	f.hdrs = append(f.hdrs, h)
}

// setLevel turns recording on at level 1 and off (discarding) above it.
func (f *frameLog) setLevel(level uint8) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.off = level != 1
	if f.off {
		f.hdrs, f.dropped = nil, 0
	}
}

// take returns and clears the headers for an event at level.
func (f *frameLog) take(level uint8) ([]FrameHeader, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, d := f.hdrs, f.dropped
	f.hdrs, f.dropped = nil, 0
	if level != 1 {
		return nil, 0
	}
	return h, d
}
