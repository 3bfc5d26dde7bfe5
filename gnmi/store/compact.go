package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// snapshotChunk bounds one bbolt value: bbolt stores a large value in
// contiguous pages, so a multi-megabyte snapshot is split.
const snapshotChunk = 4 << 20

// compactAsync writes a snapshot in the background once the log has grown
// past the threshold. Commits continue meanwhile: the snapshot is encoded
// from the version the compaction pinned.
func (s *Store) compactAsync() {
	if !s.compacting.TryLock() {
		return
	}
	s.walMu.Lock()
	s.logBytes = 0 // counted again from here; a failed compaction retries later
	s.walMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.compacting.Unlock()
		if err := s.compact(); err != nil {
			s.log.Error("compact store", "err", err)
		}
	}()
}

// Compact writes a snapshot of the config tree and drops the log records
// it covers, in one bbolt transaction. It waits for a background
// compaction to finish first: two compactions racing could otherwise
// store an older snapshot after a newer one had dropped the log it needs.
func (s *Store) Compact() error {
	s.compacting.Lock()
	defer s.compacting.Unlock()
	return s.compact()
}

func (s *Store) compact() error {
	start := time.Now()
	// Commits after seq go to a new segment; the snapshot, with the metas
	// as of now, covers every segment before it. Holding commitMu for the
	// switch only, not for the encoding, keeps commits flowing.
	s.commitMu.Lock()
	v := s.cur.Load()
	seq := v.seq
	s.walMu.Lock()
	var first uint64
	var metas map[string][]byte
	var err error
	retain, retainSeq := s.retainRecord()
	switch {
	case s.wl == nil:
		err = ErrClosed
	case s.walErr != nil:
		err = s.walErr
	default:
		if first, err = s.wl.Rotate(); err == nil {
			metas = maps.Clone(s.metas)
		} else {
			err = s.noSpace(err, "compaction's new log segment", false)
		}
	}
	s.walMu.Unlock()
	s.commitMu.Unlock()
	if err != nil {
		return fmt.Errorf("compact at seq %d: %w", seq, err)
	}
	blob := encodeSnapshot(v.t, seq, s.now().UnixNano())
	stored := false
	err = s.db.Update(func(btx *bolt.Tx) error {
		if have, ok := storedSeq(btx); ok && have >= seq {
			// A snapshot at least this new is already stored; the
			// retention mark may have moved.
			return putRetain(btx, retain)
		}
		stored = true
		if err := writeSnapshot(btx, blob, seq, first, metas); err != nil {
			return err
		}
		if err := putRetain(btx, retain); err != nil {
			return err
		}
		lc := btx.Bucket(bucketLog).Cursor()
		for k, _ := lc.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = lc.First() {
			if err := lc.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.walMu.Lock()
		err = s.noSpace(err, "compaction", false)
		s.walMu.Unlock()
		return fmt.Errorf("compact at seq %d: %w", seq, err)
	}
	if stored {
		s.walMu.Lock()
		if s.wl != nil {
			s.wl.SetBase(first)
		}
		s.walMu.Unlock()
		ids, err := wal.List(s.dir)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id < first {
				if drop, err := s.droppable(id, retainSeq); err != nil {
					return err
				} else if !drop {
					continue // the retention mark keeps it for the log's consumer
				}
				if err := os.Remove(filepath.Join(s.dir, wal.Name(id))); err != nil {
					return fmt.Errorf("remove compacted log segment: %w", err)
				}
			}
		}
	}
	s.log.Info("store compacted", "seq", seq, "took", time.Since(start))
	return nil
}

// encodeSnapshot serialises every config leaf as one record at seq.
func encodeSnapshot(t *tree.Tree, seq uint64, ts int64) []byte {
	e := newEncoder(0, seq, ts, 1<<16)
	_ = tree.Match{In: t.Root()}.Leaves(func(n *tree.Node) bool { return n.Config }, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
		e.add(tree.Change{Op: tree.OpUpdate, In: in.Ident(), Node: n, Val: v})
		return nil
	})
	return e.bytes()
}
