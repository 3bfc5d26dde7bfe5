package ledger

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// ErrGroupFull: the pending entries reached the largest group a ledger
// without a signer accepts before a checkpoint.
var ErrGroupFull = errors.New("notary log: too many bytes pending before a checkpoint")

// Append adds an entry to the open group and returns its index. The entry
// is durable, and readable, once a Flush covers it. A ledger with a signer
// flushes by itself before a group would pass about 4 MiB.
func (l *Ledger) Append(data []byte) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	if len(data) == 0 || len(data) > MaxEntry {
		return 0, fmt.Errorf("append notary entry: %d bytes, want 1..%d", len(data), MaxEntry)
	}
	need := len(data) + frameOverhead
	if len(l.pend) > 0 && len(l.pend)+need > groupTarget {
		if l.opt.Signer == nil {
			if len(l.pend)+need > maxGroup-4096 {
				return 0, ErrGroupFull
			}
		} else if _, err := l.flushLocked(nil); err != nil {
			return 0, err
		}
	}
	n := l.size + int64(len(l.pendOff))
	hs, err := tlog.StoredHashes(n, data, writerHashes{l})
	if err != nil {
		return 0, fmt.Errorf("append notary entry: %w", err)
	}
	l.pendHash = append(l.pendHash, hs...)
	l.pendOff = append(l.pendOff, int64(len(l.pend)+frameOverhead))
	l.pendLen = append(l.pendLen, uint32(len(data)))
	l.pend = appendFrame(l.pend, frameEntry, data)
	return n, nil
}

// Pending returns the tree size and root hash including the entries not
// yet flushed.
func (l *Ledger) Pending() (int64, tlog.Hash, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n := l.size + int64(len(l.pendOff))
	h, err := tlog.TreeHash(n, writerHashes{l})
	return n, h, err
}

// PendingEntries is how many appended entries no Flush covers yet.
func (l *Ledger) PendingEntries() int {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return len(l.pendOff)
}

// Flush signs a checkpoint over every entry appended so far and makes the
// group durable: one write and one fdatasync. With nothing pending it
// returns the last checkpoint.
func (l *Ledger) Flush() (Checkpoint, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.opt.Signer == nil {
		return Checkpoint{}, errors.New("flush notary log: no signer (use FlushNote)")
	}
	if err := l.writable(); err != nil {
		return Checkpoint{}, err
	}
	return l.flushLocked(nil)
}

// FlushNote is Flush with a checkpoint signed elsewhere (the node's, at
// the receiver): it must verify with the ledger's verifier and name
// exactly the pending tree, else it wraps ErrTampered or ErrFork and
// nothing is written.
func (l *Ledger) FlushNote(msg []byte) (Checkpoint, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return Checkpoint{}, err
	}
	cp, err := ParseCheckpoint(msg, l.opt.Verifier)
	if err != nil {
		return Checkpoint{}, err
	}
	n := l.size + int64(len(l.pendOff))
	if cp.Size != n {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w: it covers %d entries, %d were received", ErrFork, cp.Size, n)
	}
	h, err := tlog.TreeHash(n, writerHashes{l})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	if h != cp.Hash {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w: the %d entries hash to %s, the checkpoint signed %s", ErrTampered, n, h, cp.Hash)
	}
	if n == l.size {
		return l.Checkpoint(), nil
	}
	return l.flushLocked(&cp)
}

// Discard drops the entries appended since the last flush.
func (l *Ledger) Discard() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.resetPending()
}

func (l *Ledger) resetPending() {
	l.pend, l.pendOff, l.pendLen, l.pendHash = l.pend[:0], l.pendOff[:0], l.pendLen[:0], l.pendHash[:0]
	if cap(l.pend) > 2*groupTarget {
		l.pend = nil
	}
}

func (l *Ledger) writable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// flushLocked writes the pending group with cp, or a new signed
// checkpoint when cp is nil.
func (l *Ledger) flushLocked(cp *Checkpoint) (Checkpoint, error) {
	if len(l.pendOff) == 0 {
		return l.Checkpoint(), nil
	}
	n := l.size + int64(len(l.pendOff))
	if cp == nil {
		h, err := tlog.TreeHash(n, writerHashes{l})
		if err != nil {
			return Checkpoint{}, fmt.Errorf("flush notary log: %w", err)
		}
		c, err := SignCheckpoint(l.opt.Signer, n, h, l.opt.Now())
		if err != nil {
			return Checkpoint{}, err
		}
		cp = &c
	}
	const groupFrame = frameOverhead + 8
	total := int64(groupFrame + len(l.pend) + frameOverhead + len(cp.Note))
	buf := make([]byte, 0, total)
	buf = appendFrame(buf, frameGroup, encodeGroup(total))
	buf = append(buf, l.pend...)
	cpAt := int64(len(buf))
	buf = appendFrame(buf, frameCheckpoint, cp.Note)
	at := l.off
	// Keep room for an end marker after the group: a log that ends
	// without one was truncated.
	if at+total+frameOverhead > l.alloc {
		grow := max(allocChunk, total+frameOverhead)
		if err := unix.Fallocate(int(l.f.Fd()), 0, l.alloc, grow); err != nil {
			if err := l.f.Truncate(l.alloc + grow); err != nil {
				return Checkpoint{}, l.fail(fmt.Errorf("grow notary log: %w", err))
			}
		}
		l.alloc += grow
	}
	if _, err := l.f.WriteAt(buf, at); err != nil {
		return Checkpoint{}, l.fail(fmt.Errorf("write notary log: %w", err))
	}
	if err := fdatasync(int(l.f.Fd())); err != nil {
		return Checkpoint{}, l.fail(fmt.Errorf("sync notary log: %w", err))
	}
	hb := make([]byte, 0, len(l.pendHash)*tlog.HashSize)
	for _, h := range l.pendHash {
		hb = append(hb, h[:]...)
	}
	if _, err := l.hf.WriteAt(hb, l.hashN*tlog.HashSize); err != nil {
		return Checkpoint{}, l.fail(fmt.Errorf("write notary log hashes: %w", err))
	}
	l.off = at + total
	base := at + groupFrame
	l.mu.Lock()
	for i, o := range l.pendOff {
		l.offsets = append(l.offsets, base+o)
		l.lens = append(l.lens, l.pendLen[i])
	}
	l.cps = append(l.cps, cpRef{size: n, off: at + cpAt, n: total - cpAt})
	l.hashN += int64(len(l.pendHash))
	l.size, l.cp = n, *cp
	l.mu.Unlock()
	l.resetPending()
	return *cp, nil
}

// fail stops the writer: after a failed write or sync what the disk holds
// is unknown, and only a reopen (which recovers) may write again.
func (l *Ledger) fail(err error) error {
	l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	l.log.Error("notary log stopped writing", "file", l.path, "err", err)
	return l.failed
}

// writerHashes reads stored hashes for the writer: durable ones from the
// file, the pending group's from memory.
type writerHashes struct{ l *Ledger }

func (w writerHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= w.l.hashN {
			j := x - w.l.hashN
			if j >= int64(len(w.l.pendHash)) {
				return nil, fmt.Errorf("read stored hash %d: beyond the log", x)
			}
			out[i] = w.l.pendHash[j]
			continue
		}
		if _, err := w.l.hf.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("read stored hash %d: %w", x, err)
		}
	}
	return out, nil
}

// Next is the index the next Append gets.
func (l *Ledger) Next() int64 {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.size + int64(len(l.pendOff))
}
