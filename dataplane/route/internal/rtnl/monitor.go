package rtnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The monitor lets the backend diff against a cached copy of its kernel
// routes instead of dumping every route on every Set (a dump of 1,000 routes
// was most of a one-route Set). It listens to route, link and address
// notifications in the namespace; a socket filter drops the ones our own
// requests caused (the kernel stamps a notification with the requester's
// port id), so only other actors' changes, or an overflow, reach the backend.

const monitorGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE | unix.RTMGRP_IPV4_RULE |
	1<<(unix.RTNLGRP_IPV6_RULE-1) // no RTMGRP_ name for IPv6 rules

// Event is a change made by someone else. Route is set for route events.
type Event struct {
	Type    uint16 // RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWLINK, RTM_NEWADDR, ...
	Route   Route
	IsRoute bool
	// Removal is set for link and address events that can make the kernel
	// drop routes without a route notification: a link deleted or set
	// administratively down, an address deleted. Carrier changes and new
	// addresses (DAD finishing, say) remove no route and leave it false.
	Removal bool
	// Link is the interface index of a link event (0 otherwise), and Up
	// whether a RTM_NEWLINK says it is administratively up. Name is the
	// link's name ("" when the message did not carry it), so a listener
	// can keep its names current without listing the links again.
	Link int
	Up   bool
	Name string
	// AddrLink is the interface index of an address event (0 otherwise),
	// so a listener can tell whether the address's link carries routes
	// of its own.
	AddrLink int
}

// monitor is the notification socket. Its reads are raw syscalls on fd
// (recvmmsg, non-blocking); the wait for the next notification goes
// through the runtime's poller (raw), on the socket's os.File, which
// owns fd.
type monitor struct {
	fd   int
	file *os.File
	raw  syscall.RawConn
	acks *ackReader
}

// openMonitor runs inside the target namespace (called from Open).
func openMonitor() (*monitor, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink monitor: %w", err)
	}
	// Non-blocking, so the file is registered with the poller.
	file := os.NewFile(uintptr(fd), "netlink monitor")
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("open netlink monitor: %w", err)
	}
	return &monitor{fd: fd, file: file, raw: raw, acks: newAckReader()}, nil
}

// start drops our own notifications and joins the groups. Until it has
// run, nothing is queued, so no own event slips past the filter.
func (m *monitor) start(ownPort uint32) error {
	// Classic BPF reads packet words big-endian; nlmsg_pid is host order.
	var pid [4]byte
	native.PutUint32(pid[:], ownPort)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12}, // nlmsg_pid
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: binary.BigEndian.Uint32(pid[:]), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // ours: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // anyone else's: keep
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(m.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("filter netlink monitor: %w", err)
	}
	_ = unix.SetsockoptInt(m.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(m.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: monitorGroups}); err != nil {
		return fmt.Errorf("bind netlink monitor: %w", err)
	}
	return nil
}

// Changes drains the notifications queued since the last call and calls fn
// for each. overflow is true when the kernel dropped some (the socket was
// full): the caller must then assume anything changed.
func (c *Conn) Changes(fn func(Event)) (overflow bool, err error) {
	m := c.mon
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(m.fd), uintptr(unsafe.Pointer(&m.acks.msgs[0])),
			uintptr(len(m.acks.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EAGAIN:
			return overflow, nil
		case errno == unix.ENOBUFS:
			overflow = true
			continue
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return overflow, fmt.Errorf("read netlink monitor: %w", errno)
		}
		for i := range int(n) {
			b := m.acks.buf[i*ackSlotSize : i*ackSlotSize+int(min(m.acks.msgs[i].n, ackSlotSize))]
			for _, msg := range splitTruncated(b) {
				ev := Event{Type: msg.typ}
				switch msg.typ {
				case unix.RTM_DELLINK, unix.RTM_DELADDR:
					ev.Removal = true
				case unix.RTM_NEWLINK:
					// struct ifinfomsg: ifi_flags at offset 8.
					ev.Removal = len(msg.data) < 12 || native.Uint32(msg.data[8:12])&unix.IFF_UP == 0
					ev.Up = !ev.Removal
				}
				if (msg.typ == unix.RTM_NEWLINK || msg.typ == unix.RTM_DELLINK) && len(msg.data) >= 8 {
					ev.Link = int(int32(native.Uint32(msg.data[4:8]))) // ifi_index
					if len(msg.data) > unix.SizeofIfInfomsg {
						walkAttrs(msg.data[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
							if typ == unix.IFLA_IFNAME {
								ev.Name = string(bytes.TrimRight(v, "\x00"))
							}
						})
					}
				}
				if (msg.typ == unix.RTM_NEWADDR || msg.typ == unix.RTM_DELADDR) && len(msg.data) >= 8 {
					ev.AddrLink = int(int32(native.Uint32(msg.data[4:8]))) // struct ifaddrmsg: ifa_index
				}
				if msg.typ == unix.RTM_NEWROUTE || msg.typ == unix.RTM_DELROUTE {
					r, ok, err := parseRoute(msg.data)
					if err != nil || !ok {
						continue
					}
					ev.Route, ev.IsRoute = r, true
				}
				fn(ev)
			}
		}
	}
}

// WaitChanges waits up to timeout for a notification to read and reports
// whether one is there. It does not consume it: Changes does.
//
// The wait parks the goroutine in the runtime's poller rather than in a
// poll(2) of timeout: a goroutine blocked in a system call keeps its
// processor until the runtime's monitor takes it back, up to 10-20 ms
// later, and with two processors, the other busy, a one-route Set
// waited that long for its turn (BenchmarkRouteSingleInto100k's per-Set
// dumps: Set RPCs of 15-25 ms with no collection running; a trace of
// one: the drift watch's poll holding the second processor).
func (c *Conn) WaitChanges(timeout time.Duration) (bool, error) {
	m := c.mon
	if timeout <= 0 {
		return m.ready()
	}
	if err := m.file.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, fmt.Errorf("wait for netlink monitor: %w", err)
	}
	var ready bool
	var perr error
	err := m.raw.Read(func(uintptr) bool {
		ready, perr = m.ready()
		return ready || perr != nil
	})
	switch {
	case perr != nil:
		return false, perr
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("wait for netlink monitor: %w", err)
	}
	return ready, nil
}

// ready reports whether a notification is queued, without waiting.
func (m *monitor) ready() (bool, error) {
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	switch {
	case errors.Is(err, unix.EINTR):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("poll netlink monitor: %w", err)
	case fds[0].Revents&unix.POLLNVAL != 0:
		return false, fmt.Errorf("poll netlink monitor: %w", unix.EBADF)
	}
	return n > 0, nil
}

// splitTruncated parses messages like parseMessages but accepts a last
// message cut short by the slot size: a route notification's header,
// rtmsg and first attributes are all the monitor needs.
func splitTruncated(b []byte) []message {
	var msgs []message
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(native.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN {
			break
		}
		m := message{typ: native.Uint16(b[4:6]), flags: native.Uint16(b[6:8]), seq: native.Uint32(b[8:12])}
		m.data = b[unix.NLMSG_HDRLEN:min(l, len(b))]
		msgs = append(msgs, m)
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return msgs
}

func (m *monitor) close() error {
	if m == nil {
		return nil
	}
	return m.file.Close()
}
