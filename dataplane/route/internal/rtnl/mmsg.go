package rtnl

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Acks arrive one datagram each; reading them one recvmsg at a time was a
// third of a 100,000-route install. recvmmsg takes up to ackSlots of them
// per system call. x/sys/unix has no wrapper, so this file has the one
// raw system call of the package.

const (
	ackSlots    = 256
	ackSlotSize = 512 // an ack is 36 bytes; an error with its message well under this
)

// mmsghdr is struct mmsghdr; Go pads it like C on every architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

type ackReader struct {
	buf  []byte
	iovs []unix.Iovec
	msgs []mmsghdr
}

func newAckReader() *ackReader {
	r := &ackReader{buf: make([]byte, ackSlots*ackSlotSize), iovs: make([]unix.Iovec, ackSlots), msgs: make([]mmsghdr, ackSlots)}
	for i := range r.msgs {
		r.iovs[i].Base = &r.buf[i*ackSlotSize]
		r.iovs[i].SetLen(ackSlotSize)
		r.msgs[i].hdr.Iov = &r.iovs[i]
		r.msgs[i].hdr.SetIovlen(1)
	}
	return r
}

// read blocks for the first datagram, then takes whatever else is queued
// (MSG_WAITFORONE), and calls fn with each.
func (r *ackReader) read(fd int, fn func([]byte)) error {
	for i := range r.msgs {
		r.msgs[i].n = 0
		r.msgs[i].hdr.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msgs[0])),
		uintptr(len(r.msgs)), unix.MSG_WAITFORONE, 0, 0)
	if errno != 0 {
		return errno
	}
	for i := range int(n) {
		// A truncated datagram still has its header and error code.
		fn(r.buf[i*ackSlotSize : i*ackSlotSize+int(min(r.msgs[i].n, ackSlotSize))])
	}
	return nil
}
