package segment

import (
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// words holds typed pointers into a mapped segment. The mapping is page
// aligned and every offset is a multiple of its size, so the atomics are
// aligned as sync/atomic requires.
type words struct {
	seq   *uint64
	level *uint32
	flags *uint32
	ts    *uint64
	check *uint64
	pid   *uint32
}

func wordsOf(mem []byte) words {
	return words{
		seq:   (*uint64)(unsafe.Pointer(&mem[shm.OffSequence])),
		level: (*uint32)(unsafe.Pointer(&mem[shm.OffLevel])),
		flags: (*uint32)(unsafe.Pointer(&mem[shm.OffFlags])),
		ts:    (*uint64)(unsafe.Pointer(&mem[shm.OffTimestampNs])),
		check: (*uint64)(unsafe.Pointer(&mem[shm.OffCheck])),
		pid:   (*uint32)(unsafe.Pointer(&mem[shm.OffWriterPID])),
	}
}

// write publishes one state. Only the flock holder calls it. If the sequence
// is odd (a previous writer died mid-write) the first increment would make it
// even with torn fields visible, so it is completed with a single step.
func (w words) write(level, flags uint32, tsNs uint64) uint64 {
	seq := atomic.LoadUint64(w.seq)
	if seq%2 == 0 {
		seq = atomic.AddUint64(w.seq, 1)
	}
	// seq is odd here: readers retry until the final store below.
	next := seq + 1
	atomic.StoreUint32(w.level, level)
	atomic.StoreUint32(w.flags, flags)
	atomic.StoreUint64(w.ts, tsNs)
	atomic.StoreUint64(w.check, shm.Check(next, level, flags, tsNs))
	atomic.StoreUint64(w.seq, next)
	return next
}

// stuckAfter bounds how long a reader waits for a write in progress. A write
// is five stores, but the writer thread can be preempted between them (by
// the Go scheduler or the OS), so the bound is time, not spins; only a
// writer that died mid-write (repaired by the next Open) reaches it.
const stuckAfter = 250 * time.Millisecond

// read returns a consistent snapshot, following the seqlock read protocol.
func (w words) read() (shm.State, error) {
	var start time.Time
	for i := 0; ; i++ {
		s1 := atomic.LoadUint64(w.seq)
		if s1%2 == 1 {
			if i%64 == 63 {
				if start.IsZero() {
					start = time.Now()
				} else if time.Since(start) > stuckAfter {
					return shm.State{}, shm.ErrWriteStuck
				}
				runtime.Gosched()
			}
			continue
		}
		level := atomic.LoadUint32(w.level)
		flags := atomic.LoadUint32(w.flags)
		ts := atomic.LoadUint64(w.ts)
		check := atomic.LoadUint64(w.check)
		if atomic.LoadUint64(w.seq) != s1 {
			continue
		}
		if s1 == 0 && level == 0 && flags == 0 && ts == 0 && check == 0 {
			return shm.State{}, nil // fresh segment, never written
		}
		if check != shm.Check(s1, level, flags, ts) {
			return shm.State{}, shm.ErrTornState
		}
		st := shm.State{Level: uint8(level), Flags: flags, Sequence: s1}
		if ts != 0 {
			st.Timestamp = time.Unix(0, int64(ts))
		}
		return st, nil
	}
}

// fields loads level and flags without the seqlock; only the writer uses it,
// and it is the only one that changes them.
func (w words) fields() (level, flags uint32) {
	return atomic.LoadUint32(w.level), atomic.LoadUint32(w.flags)
}

func loadSeq(w words) uint64 { return atomic.LoadUint64(w.seq) }

func storeU32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
