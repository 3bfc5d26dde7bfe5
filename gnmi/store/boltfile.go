package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bbolt maps tree.db into memory and follows the page numbers it finds
// there without checking them against the file: a truncated or damaged
// file faults (SIGBUS, SIGSEGV) or panics, and some of that happens on a
// goroutine of bbolt's own (rebuilding the free list on a writable open),
// where no recover can catch it. So tree.db's structure is checked by
// reading it, before bbolt maps it: meta pages, high-water mark against
// the file size, and every page reachable from the root. bbolt itself is
// then opened and read with faults turned into panics and panics into
// errors, for what the check cannot foresee.

const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltElement    = 16
	boltBranch     = 0x01
	boltLeaf       = 0x02
	boltBucketFlag = 0x01
	boltNoFreelist = ^uint64(0)
	// boltMaxDepth bounds the walk: bbolt trees are a few levels deep.
	boltMaxDepth = 64
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

// readBoltMeta decodes the meta page at off, or says why it is invalid.
func readBoltMeta(f *os.File, off int64) (boltMeta, error) {
	var b [boltPageHeader + 64]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, fmt.Errorf("read meta page: %w", err)
	}
	m := b[boltPageHeader:]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("meta page: bad magic")
	}
	if v := binary.LittleEndian.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("meta page: version %d", v)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return boltMeta{}, errors.New("meta page: checksum mismatch")
	}
	return boltMeta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, nil
}

// errBoltDamaged marks what checkBoltFile found wrong with the file, as
// opposed to an error reading it.
var errBoltDamaged = errors.New("damaged bbolt file")

// checkBoltFile checks the structure of the bbolt file at path by reading
// it. An error matching errBoltDamaged means bbolt must not open the
// file; any other error is one of reading it.
func checkBoltFile(path string) error {
	err := checkBolt(path)
	var pe *os.PathError
	if err != nil && !errors.As(err, &pe) {
		return fmt.Errorf("%w: %w", errBoltDamaged, err)
	}
	return err
}

func checkBolt(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	// bbolt uses the valid meta page with the higher transaction id.
	m0, err0 := readBoltMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readBoltMeta(f, ps)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return fmt.Errorf("both meta pages are invalid (%v; %v)", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil || m0.txid >= m1.txid:
		m = m0
	default:
		m = m1
	}
	ps = int64(m.pageSize)
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return fmt.Errorf("meta page: page size %d", ps)
	}
	if m.pgid < 3 || m.pgid > uint64(size/ps) {
		return fmt.Errorf("the file is %d bytes but its meta page says it holds %d pages of %d bytes: truncated", size, m.pgid, ps)
	}
	if m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid) {
		return fmt.Errorf("meta page: free list page %d outside 2..%d", m.freelist, m.pgid-1)
	}
	c := &boltChecker{f: f, ps: ps, hw: m.pgid, seen: map[uint64]bool{}}
	_, err = c.page(m.root, 0, nil, nil)
	return err
}

type boltChecker struct {
	f    *os.File
	ps   int64
	hw   uint64
	seen map[uint64]bool
}

// page checks page id and everything below it: its keys must lie in
// [lo, hi) (nil: unbounded). It returns the greatest key below it.
func (c *boltChecker) page(id uint64, depth int, lo, hi []byte) ([]byte, error) {
	if depth > boltMaxDepth {
		return nil, fmt.Errorf("page %d: tree deeper than %d levels", id, boltMaxDepth)
	}
	if id < 2 || id >= c.hw {
		return nil, fmt.Errorf("a reference to page %d, outside 2..%d", id, c.hw-1)
	}
	if c.seen[id] {
		return nil, fmt.Errorf("page %d is referenced twice", id)
	}
	var h [boltPageHeader]byte
	if _, err := c.f.ReadAt(h[:], int64(id)*c.ps); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	if got := binary.LittleEndian.Uint64(h[0:]); got != id {
		return nil, fmt.Errorf("page %d: its header says page %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(h[12:]))
	if id+overflow >= c.hw {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the high-water mark %d", id, overflow, c.hw)
	}
	// A page and its overflow pages are each used once (bbolt refuses
	// a file where a reference lands inside another page's overflow).
	for o := id; o <= id+overflow; o++ {
		if c.seen[o] {
			return nil, fmt.Errorf("page %d is referenced twice", o)
		}
		c.seen[o] = true
	}
	b := make([]byte, int64(overflow+1)*c.ps)
	if _, err := c.f.ReadAt(b, int64(id)*c.ps); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	return c.nodes(b, fmt.Sprintf("page %d", id), depth, lo, hi)
}

// nodes checks a branch or leaf page held in b (a page of the file, or
// an inline bucket's page inside a value), whose keys must lie in
// [lo, hi), and returns its greatest key (lo if it has none).
//
// Key order is checked too because bbolt's writable open rebuilds the
// free list by walking the pages and refuses a file whose keys are out
// of order (a flipped byte in a branch page's key does that); the check
// must see what would make the open fail.
func (c *boltChecker) nodes(b []byte, where string, depth int, lo, hi []byte) ([]byte, error) {
	if len(b) < boltPageHeader {
		return nil, fmt.Errorf("%s: shorter than a page header", where)
	}
	flags := binary.LittleEndian.Uint16(b[8:])
	count := int(binary.LittleEndian.Uint16(b[10:]))
	if boltPageHeader+count*boltElement > len(b) {
		return nil, fmt.Errorf("%s: %d elements do not fit", where, count)
	}
	prev := lo // the key every later key must follow
	for i := range count {
		eo := boltPageHeader + i*boltElement
		e := b[eo : eo+boltElement]
		switch flags {
		case boltBranch:
			pos, ksize := int(binary.LittleEndian.Uint32(e[0:])), int(binary.LittleEndian.Uint32(e[4:]))
			if eo+pos+ksize > len(b) {
				return nil, fmt.Errorf("%s: branch element %d runs past the page", where, i)
			}
			key := b[eo+pos : eo+pos+ksize]
			if err := boltKeyInOrder(key, i, prev, hi); err != nil {
				return nil, fmt.Errorf("%s: branch %w", where, err)
			}
			next := hi
			if i+1 < count {
				no := boltPageHeader + (i+1)*boltElement
				npos, nksize := int(binary.LittleEndian.Uint32(b[no:])), int(binary.LittleEndian.Uint32(b[no+4:]))
				if no+npos+nksize > len(b) {
					return nil, fmt.Errorf("%s: branch element %d runs past the page", where, i+1)
				}
				next = b[no+npos : no+npos+nksize]
			}
			last, err := c.page(binary.LittleEndian.Uint64(e[8:]), depth+1, key, next)
			if err != nil {
				return nil, err
			}
			prev = last
		case boltLeaf:
			eflags := binary.LittleEndian.Uint32(e[0:])
			pos, ksize, vsize := int(binary.LittleEndian.Uint32(e[4:])), int(binary.LittleEndian.Uint32(e[8:])), int(binary.LittleEndian.Uint32(e[12:]))
			end := eo + pos + ksize + vsize
			if pos < 0 || end > len(b) || end < eo {
				return nil, fmt.Errorf("%s: leaf element %d runs past the page", where, i)
			}
			key := b[eo+pos : eo+pos+ksize]
			if err := boltKeyInOrder(key, i, prev, hi); err != nil {
				return nil, fmt.Errorf("%s: leaf %w", where, err)
			}
			prev = key
			if eflags&boltBucketFlag == 0 {
				continue
			}
			v := b[eo+pos+ksize : end]
			if len(v) < 16 {
				return nil, fmt.Errorf("%s: bucket element %d is %d bytes", where, i, len(v))
			}
			// A bucket is a key space of its own.
			if root := binary.LittleEndian.Uint64(v); root != 0 {
				if _, err := c.page(root, depth+1, nil, nil); err != nil {
					return nil, err
				}
			} else if _, err := c.nodes(v[16:], fmt.Sprintf("%s, inline bucket %d", where, i), depth+1, nil, nil); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: not a branch or leaf page (flags %#x)", where, flags)
		}
	}
	return prev, nil
}

// boltKeyInOrder checks element i's key against the key before it (the
// lower bound for the first element, which it may equal) and the
// exclusive upper bound hi.
func boltKeyInOrder(key []byte, i int, prev, hi []byte) error {
	switch c := bytes.Compare(prev, key); {
	case prev != nil && i == 0 && c > 0:
		return fmt.Errorf("element 0's key %x is below its parent's %x", key, prev)
	case prev != nil && i > 0 && c >= 0:
		return fmt.Errorf("element %d's key %x does not follow %x", i, key, prev)
	}
	if hi != nil && bytes.Compare(key, hi) >= 0 {
		return fmt.Errorf("element %d's key %x is not below the next key of its parent, %x", i, key, hi)
	}
	return nil
}

// openBolt opens tree.db, turning bbolt's panics and faults into errors.
// The file's structure must have been checked (checkBoltFile) if it
// existed.
func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	err = guardBolt(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:        2 * time.Second,
			ReadOnly:       readOnly,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		})
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, errLocked
	}
	return db, err
}

// errLocked: another process (a running daemon) holds the store.
var errLocked = errors.New("locked by another process (is a kedge-daemon running on it?)")

// errBoltPanic marks a panic or fault inside bbolt, turned into an error.
var errBoltPanic = errors.New("bbolt failed on the file")

// guardBolt runs fn, which calls into bbolt, with memory faults turned
// into panics and panics into errors.
func guardBolt(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errBoltPanic, r)
		}
	}()
	return fn()
}
