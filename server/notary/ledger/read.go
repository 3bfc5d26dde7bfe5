package ledger

import (
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// Size returns how many entries are durable.
func (l *Ledger) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Checkpoint returns the last durable checkpoint (zero before the first).
func (l *Ledger) Checkpoint() Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cp
}

// Entry returns durable entry i.
func (l *Ledger) Entry(i int64) ([]byte, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	if i < 0 || i >= l.size {
		n := l.size
		l.mu.RUnlock()
		return nil, fmt.Errorf("read notary entry %d: the log holds %d", i, n)
	}
	off, n := l.offsets[i], l.lens[i]
	l.mu.RUnlock()
	b := make([]byte, n)
	if _, err := l.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read notary entry %d: %w", i, err)
	}
	return b, nil
}

// EntryBytes is the total size of entries [from, to).
func (l *Ledger) EntryBytes(from, to int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for i := max(from, 0); i < min(to, l.size); i++ {
		n += int64(l.lens[i])
	}
	return n
}

// CheckpointAt returns the checkpoint stored with the group that ended at
// size, if there is one.
func (l *Ledger) CheckpointAt(size int64) (Checkpoint, bool, error) {
	l.mu.RLock()
	i := sort.Search(len(l.cps), func(i int) bool { return l.cps[i].size >= size })
	if i == len(l.cps) || l.cps[i].size != size {
		l.mu.RUnlock()
		return Checkpoint{}, false, nil
	}
	ref := l.cps[i]
	l.mu.RUnlock()
	msg := make([]byte, ref.n-frameOverhead)
	if _, err := l.f.ReadAt(msg, ref.off+frameOverhead); err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint at size %d: %w", size, err)
	}
	c, err := ParseCheckpoint(msg, l.opt.Verifier)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint at size %d: %w", size, err)
	}
	return c, true, nil
}

// NextCheckpoint returns the size of the furthest stored checkpoint after
// from whose entries past from total at most budget bytes, or the first
// checkpoint after from when even that one's exceed it; 0 when no
// checkpoint follows from.
func (l *Ledger) NextCheckpoint(from, budget int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.cps), func(i int) bool { return l.cps[i].size > from })
	if i == len(l.cps) {
		return 0
	}
	best := l.cps[i].size
	var bytes int64
	next := from
	for ; i < len(l.cps); i++ {
		for ; next < l.cps[i].size; next++ {
			bytes += int64(l.lens[next])
		}
		if bytes > budget {
			break
		}
		best = l.cps[i].size
	}
	return best
}

// HashReader reads the stored hashes of the durable tree.
func (l *Ledger) HashReader() tlog.HashReader { return durableHashes{l} }

type durableHashes struct{ l *Ledger }

func (d durableHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	d.l.mu.RLock()
	n, closed := d.l.hashN, d.l.closed
	d.l.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= n {
			return nil, fmt.Errorf("read stored hash %d: the log has %d", x, n)
		}
		if _, err := d.l.hf.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("read stored hash %d: %w", x, err)
		}
	}
	return out, nil
}

// TreeHash is the root hash of the first n durable entries.
func (l *Ledger) TreeHash(n int64) (tlog.Hash, error) {
	if n < 0 || n > l.Size() {
		return tlog.Hash{}, fmt.Errorf("tree hash at %d: the log holds %d", n, l.Size())
	}
	return tlog.TreeHash(n, l.HashReader())
}

// ProveRecord returns the inclusion proof of entry i in the tree of size
// n.
func (l *Ledger) ProveRecord(i, n int64) (tlog.RecordProof, error) {
	if i < 0 || i >= n || n > l.Size() {
		return nil, fmt.Errorf("prove entry %d in tree %d: the log holds %d", i, n, l.Size())
	}
	return tlog.ProveRecord(n, i, l.HashReader())
}

// ProveTree returns the consistency proof that the tree of size n extends
// the tree of size old.
func (l *Ledger) ProveTree(n, old int64) (tlog.TreeProof, error) {
	if old < 0 || old > n || n > l.Size() {
		return nil, fmt.Errorf("prove tree %d extends %d: the log holds %d", n, old, l.Size())
	}
	if old == 0 || old == n {
		return nil, nil
	}
	return tlog.ProveTree(n, old, l.HashReader())
}

// Scan calls fn with each durable entry from index from on, in order, until
// fn returns false or an error.
func (l *Ledger) Scan(from int64, fn func(i int64, data []byte) (bool, error)) error {
	for i := max(from, 0); i < l.Size(); i++ {
		b, err := l.Entry(i)
		if err != nil {
			return err
		}
		more, err := fn(i, b)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Bytes is how much of the log file is written.
func (l *Ledger) Bytes() int64 {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.off
}
