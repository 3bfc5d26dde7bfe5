package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
)

// ErrNoAck means a target did not acknowledge the DRAIN before the deadline.
var ErrNoAck = errors.New("drain not acknowledged")

// resendEvery is how often an unacknowledged DRAIN is repeated. Over a live
// tunnel the ACK comes back in well under a millisecond; this only matters
// when a datagram is lost.
const resendEvery = 20 * time.Millisecond

// openUDP opens a UDP socket in netns, bound to the tunnel device so that
// nothing arriving on another interface (an underlay neighbour spoofing a
// tunnel address) is accepted, and nothing sent leaves outside the tunnel.
func openUDP(netns, device string, laddr netip.AddrPort) (*net.UDPConn, error) {
	t, err := nsthread.Start(netns)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), device) })
		if err != nil {
			return err
		}
		return serr
	}}
	var pc net.PacketConn
	err = t.Do(func() error {
		var err error
		pc, err = lc.ListenPacket(context.Background(), "udp", laddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open drain socket on %s %s: %w", device, laddr, err)
	}
	return pc.(*net.UDPConn), nil
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Node   string // this node's name, as its peers know it
	Device string // the WireGuard interface
	Netns  string // namespace of the device; empty is the caller's
	Port   int    // peers' listener port; 0 is DefaultPort
	Logger *slog.Logger
}

// Sender sends DRAIN notices. Drain may be called from one goroutine at a time.
type Sender struct {
	cfg  SenderConfig
	conn *net.UDPConn
	seq  atomic.Uint64
	log  *slog.Logger
}

// NewSender opens the sender's socket on the tunnel device.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if _, err := (Message{Node: cfg.Node}).Marshal(); err != nil {
		return nil, fmt.Errorf("start drain sender: %w", err)
	}
	c, err := openUDP(cfg.Netns, cfg.Device, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if err != nil {
		return nil, fmt.Errorf("start drain sender: %w", err)
	}
	s := &Sender{cfg: cfg, conn: c, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Start from the clock so sequences keep growing across restarts.
	s.seq.Store(uint64(time.Now().UnixNano()))
	return s, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return s.conn.Close() }

// Drain tells every target (peer name → tunnel address) that this node is
// moving to posture level, and waits until each has acknowledged or ctx
// ends. The result has one entry per target: nil when acknowledged, else
// the reason. The caller tears the tunnels down afterwards either way.
func (s *Sender) Drain(ctx context.Context, level uint8, targets map[string]netip.Addr) map[string]error {
	seq := s.seq.Add(1)
	out := make(map[string]error, len(targets))
	pending := make(map[netip.Addr]string, len(targets))
	for name, a := range targets {
		pending[a.Unmap()] = name
		out[name] = ErrNoAck
	}
	msg, err := (Message{Type: TypeDrain, Node: s.cfg.Node, Level: level, Seq: seq}).Marshal()
	if err != nil {
		for name := range out {
			out[name] = err
		}
		return out
	}
	acks := make(chan netip.Addr, len(targets))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader: collects ACKs for this sequence
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			s.conn.SetReadDeadline(time.Now().Add(resendEvery))
			n, from, err := s.conn.ReadFromUDPAddrPort(buf)
			select {
			case <-stop:
				return
			default:
			}
			if err != nil {
				continue // deadline tick or transient error
			}
			m, err := Unmarshal(buf[:n])
			if err != nil || m.Type != TypeAck || m.Seq != seq {
				continue
			}
			// The collector may have returned (deadline, or every peer
			// acknowledged) while a late or repeated ACK was read: never
			// block on it, or the deferred wg.Wait below never returns and
			// the posture transition that sent the DRAIN hangs for good.
			select {
			case acks <- from.Addr().Unmap():
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		s.conn.SetReadDeadline(time.Now()) // wake the reader now, not at its next tick
		wg.Wait()
	}()

	send := func() {
		for a, name := range pending {
			if _, err := s.conn.WriteToUDPAddrPort(msg, netip.AddrPortFrom(a, uint16(s.cfg.Port))); err != nil {
				out[name] = fmt.Errorf("send drain to %s: %w", a, err)
			}
		}
	}
	send()
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case a := <-acks:
			if name, ok := pending[a]; ok {
				out[name] = nil
				delete(pending, a)
			}
		case <-tick.C:
			send()
		case <-ctx.Done():
			s.log.Warn("drain not acknowledged by every peer", "pending", len(pending), "level", level)
			return out
		}
	}
	return out
}

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	Device string     // the WireGuard interface
	Addr   netip.Addr // this node's tunnel address
	Port   int        // 0 is DefaultPort
	Netns  string     // namespace of the device; empty is the caller's
	// Lookup maps a tunnel source address to the peer owning it in the
	// allowed IPs (wgmesh.Backend.PeerForAddr). Peer names must be node
	// names: a notice claiming another name than its source's is dropped.
	Lookup  func(netip.Addr) (string, bool)
	Tracker *Tracker
	Logger  *slog.Logger
}

// Listener receives DRAIN notices into a Tracker and acknowledges them.
type Listener struct {
	cfg  ListenerConfig
	conn *net.UDPConn
	log  *slog.Logger
	done chan struct{}
}

// Listen binds the listener on the tunnel address and starts serving.
func Listen(cfg ListenerConfig) (*Listener, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Lookup == nil || cfg.Tracker == nil {
		return nil, fmt.Errorf("start drain listener: Lookup and Tracker are required")
	}
	c, err := openUDP(cfg.Netns, cfg.Device, netip.AddrPortFrom(cfg.Addr, uint16(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("start drain listener: %w", err)
	}
	l := &Listener{cfg: cfg, conn: c, log: cfg.Logger, done: make(chan struct{})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	go l.serve()
	return l, nil
}

// Close stops the listener and waits for it.
func (l *Listener) Close() error {
	err := l.conn.Close()
	<-l.done
	return err
}

func (l *Listener) serve() {
	defer close(l.done)
	buf := make([]byte, 512)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m, err := Unmarshal(buf[:n])
		if err != nil || m.Type != TypeDrain {
			continue
		}
		src := from.Addr().Unmap()
		peer, ok := l.cfg.Lookup(src)
		if !ok || peer != m.Node {
			l.log.Warn("drain notice rejected: source is not that peer's", "from", src, "claims", m.Node, "owner", peer)
			continue
		}
		fresh, repeat := l.cfg.Tracker.record(peer, m)
		if !fresh && !repeat {
			continue // replay of an older notice
		}
		if fresh {
			l.log.Info("peer drained for posture", "peer", peer, "level", m.Level, "seq", m.Seq)
		}
		ack, err := (Message{Type: TypeAck, Node: m.Node, Level: m.Level, Seq: m.Seq}).Marshal()
		if err == nil {
			l.conn.WriteToUDPAddrPort(ack, from)
		}
	}
}
