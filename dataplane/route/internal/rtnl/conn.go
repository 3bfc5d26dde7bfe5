// Package rtnl is the route backend's only door to the kernel: one rtnetlink
// socket opened inside the target network namespace, batched route and rule
// requests with every acknowledgement checked, filtered dumps, and link and
// address changes for underlay interfaces.
//
// Nothing outside dataplane/route may import it; it exposes plain types
// (net/netip, integers) so netlink details stay here.
package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netlink header flags the x/sys package does not name.
const (
	nlmFCapped  = 0x100 // NLM_F_CAPPED: the error message carries only the request header
	nlmFAckTLVs = 0x200 // NLM_F_ACK_TLVS: extended-ack attributes follow
)

// socket buffer sizes. The receive buffer must hold every acknowledgement of
// one batch: the kernel processes the whole sendmsg before we read, and an ack
// that does not fit is dropped (ENOBUFS), leaving us blind about its request.
const (
	sendBufBytes = 4 << 20
	recvBufBytes = 16 << 20
)

// ErrAckLost is returned for a request whose acknowledgement never arrived
// (the socket overflowed); its outcome is unknown until the next dump.
var ErrAckLost = errors.New("acknowledgement lost")

// Errno is a kernel error for one request, with the kernel's extended-ack
// message when it sent one.
type Errno struct {
	Errno unix.Errno
	Msg   string
}

func (e *Errno) Error() string {
	if e.Msg == "" {
		return e.Errno.Error()
	}
	return e.Errno.Error() + " (" + strings.TrimSpace(e.Msg) + ")"
}

// Unwrap lets errors.Is(err, unix.ENETUNREACH) work.
func (e *Errno) Unwrap() error { return e.Errno }

// Conn is an rtnetlink connection bound to one network namespace. It is not
// safe for concurrent use; the backend serialises calls.
type Conn struct {
	fd  int
	seq uint32
	buf []byte
	// out is the last batch's send buffer, kept for the next: a bulk
	// Exec sends one batch after another of the same size.
	out   []byte
	links *netlink.Handle // reads and link/address writes, same namespace
	acks  *ackReader
	mon   *monitor
	sent  Counters
}

// Counters count the requests Exec sent and the sendmsg calls it took.
type Counters struct {
	Messages int
	Sends    int
}

// Counters returns the totals since Open.
func (c *Conn) Counters() Counters { return c.sent }

// Open opens a connection in the namespace at nsPath ("" is the caller's
// current namespace).
func Open(nsPath string) (*Conn, error) {
	var fd int
	var links *netlink.Handle
	var mon *monitor
	err := inNetns(nsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink socket: %w", err)
		}
		if mon, err = openMonitor(); err != nil {
			unix.Close(fd)
			return err
		}
		links, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			unix.Close(fd)
			mon.close()
			return fmt.Errorf("open netlink handle: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c := &Conn{fd: fd, buf: make([]byte, 1<<20), links: links, acks: newAckReader(), mon: mon}
	if err := c.setup(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup() error {
	// FORCE variants need CAP_NET_ADMIN, which we have whenever we can
	// change routes; fall back to the capped ones otherwise.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBufBytes); err != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBufBytes)
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recvBufBytes); err != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, recvBufBytes)
	}
	// Errors carry only the request header, not the whole request back.
	_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	// Ask for the kernel's human-readable reason ("Nexthop has invalid gateway").
	_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	// Strict checking makes the kernel honour the protocol filter in route
	// dumps, so foreign routes are never even sent to us.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return fmt.Errorf("enable strict netlink checking: %w", err)
	}
	// A stuck kernel must not hang the reconciler forever.
	tv := unix.Timeval{Sec: 30}
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set netlink receive timeout: %w", err)
	}
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return fmt.Errorf("get netlink port id: %w", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return fmt.Errorf("get netlink port id: address is %T", sa)
	}
	return c.mon.start(nl.Pid)
}

// Close releases the socket and handle.
func (c *Conn) Close() error {
	if c.links != nil {
		c.links.Close()
	}
	return errors.Join(c.mon.close(), unix.Close(c.fd))
}

// inNetns runs fn on a locked OS thread switched into the namespace at path.
// Sockets opened by fn stay in that namespace for their whole life.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime discards it when this
			// goroutine exits, so no other goroutine runs in the wrong netns.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Request is one netlink request: type, flags (NLM_F_REQUEST is added,
// and NLM_F_ACK to a batch's last message: see execBatch) and the payload
// after the netlink header.
type Request struct {
	Type  uint16
	Flags uint16
	Body  []byte
}

// Exec sends reqs in batches of up to batch requests per sendmsg and returns
// one error per request (nil when the kernel applied it). A failing
// request does not stop the others: the kernel processes every message of a
// sendmsg in order. The returned error is for the socket itself.
// Between batches it checks ctx and stops early with ctx's error.
func (c *Conn) Exec(ctx context.Context, reqs []Request, batch int) ([]error, error) {
	return c.ExecEcho(ctx, reqs, batch, nil)
}

// ExecEcho is Exec also calling echo with the index of each request sent
// with FlagEcho and the route the kernel installed for it (the kernel's
// copy of its notification, sent before the acknowledgement): a route
// given only a gateway comes back with the device the kernel resolved.
func (c *Conn) ExecEcho(ctx context.Context, reqs []Request, batch int, echo func(i int, r Route)) ([]error, error) {
	if batch <= 0 {
		batch = 512
	}
	errs := make([]error, len(reqs))
	for start := 0; start < len(reqs); start += batch {
		end := min(start+batch, len(reqs))
		err := ctx.Err()
		if err == nil {
			err = c.execBatch(reqs[start:end], errs[start:end], echo, start)
		}
		if err != nil {
			for i := start; i < len(reqs); i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			return errs, err
		}
	}
	return errs, nil
}

// execBatch sends reqs in one sendmsg; echo gets each echoed route with
// its request's index plus at.
func (c *Conn) execBatch(reqs []Request, errs []error, echo func(int, Route), at int) error {
	size := 0
	for _, r := range reqs {
		size += nlmsgAlign(unix.NLMSG_HDRLEN + len(r.Body))
	}
	out := slices.Grow(c.out[:0], size)
	first := c.seq + 1
	// Only the batch's last message asks for an acknowledgement. The
	// kernel answers a failing message with an error whether it asked
	// or not, and handles a sendmsg's messages in order on this socket,
	// so once the last one's ack is read every error of the batch has
	// been read before it, and a message without one was applied. An
	// ack per message cost the kernel a datagram each (allocated,
	// queued, copied out) and this side a read and a parse each.
	for i, r := range reqs {
		c.seq++
		flags := r.Flags | unix.NLM_F_REQUEST
		if i == len(reqs)-1 {
			flags |= unix.NLM_F_ACK
		}
		out = appendHeader(out, r.Type, flags, c.seq, len(r.Body))
		out = append(out, r.Body...)
		out = pad(out)
	}
	if err := unix.Sendto(c.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink batch: %w", err)
	}
	c.out = out[:0]
	c.sent.Sends++
	c.sent.Messages += len(reqs)
	done := make([]bool, len(reqs))
	last := uint32(len(reqs) - 1)
	var perr error
	// The kernel answers each message in a datagram of its own: the
	// parsed messages' slice is kept from one to the next rather than
	// made for each (one allocation per route of a bulk batch).
	var msgs []message
	handle := func(b []byte) {
		var err error
		msgs, err = parseMessages(msgs[:0], b)
		if err != nil {
			perr = err
			return
		}
		for _, m := range msgs {
			i := m.seq - first // unsigned: survives sequence wrap-around
			if m.typ == unix.RTM_NEWROUTE && echo != nil && i < uint32(len(reqs)) && !done[i] {
				if r, ok, err := parseRoute(m.data); err == nil && ok {
					echo(at+int(i), r)
				}
				continue
			}
			if m.typ != unix.NLMSG_ERROR {
				continue
			}
			if i >= uint32(len(reqs)) || done[i] {
				continue // an ack from an earlier, abandoned batch
			}
			done[i] = true
			errs[i] = parseAck(m)
		}
	}
	for !done[last] {
		err := c.acks.read(c.fd, handle)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Some answers were dropped and will never come; we cannot
			// tell which of the messages not yet answered succeeded (a
			// success has no answer but the last's).
			for i := range reqs {
				if !done[i] {
					errs[i] = ErrAckLost
				}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive netlink ack: %w", err)
		}
		if perr != nil {
			return perr
		}
	}
	return nil
}

// Dump runs a dump request and calls fn with each reply's type and payload.
func (c *Conn) Dump(typ uint16, body []byte, fn func(typ uint16, payload []byte) error) error {
	c.seq++
	seq := c.seq
	out := appendHeader(nil, typ, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, len(body))
	out = pad(append(out, body...))
	if err := unix.Sendto(c.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink dump: %w", err)
	}
	var cbErr error
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive netlink dump: %w", err)
		}
		msgs, err := parseMessages(nil, c.buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.seq != seq {
				continue
			}
			switch m.typ {
			case unix.NLMSG_DONE:
				return cbErr
			case unix.NLMSG_ERROR:
				if err := parseAck(m); err != nil {
					return fmt.Errorf("dump: %w", err)
				}
				return cbErr
			default:
				if cbErr == nil {
					cbErr = fn(m.typ, m.data)
				}
			}
		}
	}
}

type message struct {
	typ   uint16
	flags uint16
	seq   uint32
	data  []byte
}

// parseMessages appends the netlink messages in b to msgs.
func parseMessages(msgs []message, b []byte) ([]message, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(native.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("parse netlink message: bad length %d", l)
		}
		msgs = append(msgs, message{
			typ:   native.Uint16(b[4:6]),
			flags: native.Uint16(b[6:8]),
			seq:   native.Uint32(b[8:12]),
			data:  b[unix.NLMSG_HDRLEN:l],
		})
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return msgs, nil
}

// parseAck decodes an NLMSG_ERROR payload: nil for a plain ack, *Errno else.
func parseAck(m message) error {
	if len(m.data) < 4 {
		return fmt.Errorf("parse netlink ack: short message")
	}
	code := int32(native.Uint32(m.data[0:4]))
	if code == 0 {
		return nil
	}
	e := &Errno{Errno: unix.Errno(-code)}
	if m.flags&nlmFAckTLVs == 0 {
		return e
	}
	// The echoed request follows: its header only when capped.
	off := 4 + unix.NLMSG_HDRLEN
	if m.flags&nlmFCapped == 0 && len(m.data) >= off {
		off = 4 + nlmsgAlign(int(native.Uint32(m.data[4:8])))
	}
	if off > len(m.data) {
		return e
	}
	walkAttrs(m.data[off:], func(typ uint16, v []byte) {
		if typ == unix.NLMSGERR_ATTR_MSG {
			e.Msg = strings.TrimRight(string(v), "\x00")
		}
	})
	return e
}

var native = binary.NativeEndian

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

func pad(b []byte) []byte {
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func appendHeader(b []byte, typ, flags uint16, seq uint32, bodyLen int) []byte {
	b = native.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+bodyLen))
	b = native.AppendUint16(b, typ)
	b = native.AppendUint16(b, flags)
	b = native.AppendUint32(b, seq)
	return native.AppendUint32(b, 0) // port id: the kernel fills ours in
}

// appendAttr appends one rtattr (4-byte aligned).
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = native.AppendUint16(b, uint16(unix.SizeofRtAttr+len(v)))
	b = native.AppendUint16(b, typ)
	return pad(append(b, v...))
}

func appendU32Attr(b []byte, typ uint16, v uint32) []byte {
	b = native.AppendUint16(b, unix.SizeofRtAttr+4)
	b = native.AppendUint16(b, typ)
	return native.AppendUint32(b, v)
}

// walkAttrs calls fn for each rtattr in b; it stops at the first malformed one.
func walkAttrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(native.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return
		}
		fn(native.Uint16(b[2:4])&^unix.NLA_F_NESTED, b[unix.SizeofRtAttr:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

// NSPath resolves a namespace option: "" is the current namespace, a bare
// name is /run/netns/NAME, anything with a slash is a path.
func NSPath(ns string) string {
	if ns == "" || strings.ContainsRune(ns, os.PathSeparator) {
		return ns
	}
	return "/run/netns/" + ns
}
