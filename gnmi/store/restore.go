package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// treeDB is the bbolt file holding the snapshot and the metas with it.
const treeDB = "tree.db"

// loaded is what load read from disk, for settle to act on.
type loaded struct {
	snap   snapshot
	replay *wal.Result
	// commits and metas counts the log records replayed.
	commits, metas int
}

// load restores the tree, the metas and the sequence from tree.db and
// the log without changing any file: it verifies tree.db's structure and
// checksums, loads the snapshot, replays the log records bbolt still
// holds from before the segment files, then the segments. Damage is a
// *DamageError that says what recovery would drop. tree.db is opened
// read-only, holding a shared lock, so a running daemon makes it fail.
func (s *Store) load() (*loaded, error) {
	l := &loaded{}
	path := filepath.Join(s.dir, treeDB)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", s.dir, err)
	case st.Size() > 0:
		if err := checkBoltFile(path); errors.Is(err, errBoltDamaged) {
			return nil, s.damagedTreeDB(err)
		} else if err != nil {
			return nil, fmt.Errorf("open store %s: %w", s.dir, err)
		}
		db, err := openBolt(path, true)
		if err != nil {
			if errors.Is(err, errBoltPanic) {
				return nil, s.damagedTreeDB(err)
			}
			return nil, fmt.Errorf("open store %s: %w", s.dir, err)
		}
		defer db.Close()
		if err := s.loadTreeDB(db, l); err != nil {
			return nil, err
		}
	}
	if err := s.replayLog(l); err != nil {
		return nil, err
	}
	return l, nil
}

// loadTreeDB reads the snapshot, its metas and the old bbolt log into
// the tree.
func (s *Store) loadTreeDB(db *bolt.DB, l *loaded) error {
	err := guardBolt(func() error {
		return db.View(func(btx *bolt.Tx) error {
			sn, err := readSnapshot(btx)
			if err != nil {
				return &treeDBError{err}
			}
			l.snap = sn
			s.loadRetain(btx.Bucket(bucketMeta))
			return s.apply(func(tx *tree.Txn) error {
				if sn.present {
					seq, _, err := decodeRecord(sn.blob, tx)
					if err != nil {
						return &treeDBError{fmt.Errorf("snapshot: %w", err)}
					}
					if seq != sn.seq {
						return &treeDBError{fmt.Errorf("snapshot: holds seq %d, its manifest says %d", seq, sn.seq)}
					}
					s.seq = seq
				}
				s.metas = sn.metas
				b := btx.Bucket(bucketLog)
				if b == nil {
					return nil
				}
				c := b.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					seq := binary.BigEndian.Uint64(k)
					if seq <= s.seq {
						continue // compaction removes these; tolerate a crash between the two
					}
					got, _, err := decodeRecord(v, tx)
					if err != nil {
						return &treeDBError{fmt.Errorf("log record %d in bbolt: %w", seq, err)}
					}
					if got != seq {
						return &treeDBError{fmt.Errorf("log record under key %d holds seq %d", seq, got)}
					}
					s.seq = seq
					s.logBytes += int64(len(v))
					l.commits++
				}
				return nil
			})
		})
	})
	var te *treeDBError
	switch {
	case errors.As(err, &te):
		return s.damagedTreeDB(te.err)
	case errors.Is(err, errBoltPanic):
		return s.damagedTreeDB(err)
	case err != nil:
		return fmt.Errorf("restore store %s: %w", s.dir, err)
	}
	return nil
}

// treeDBError marks damage found inside tree.db while reading it.
type treeDBError struct{ err error }

func (e *treeDBError) Error() string { return e.err.Error() }

// apply runs fn in a tree transaction that is committed whatever fn
// returns: restore builds the tree of a store that is discarded on error.
func (s *Store) apply(fn func(tx *tree.Txn) error) error {
	tx, err := s.t.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Commit()
	return fn(tx)
}

// replayLog applies the log segments that the snapshot does not cover.
// Damage becomes a *DamageError counting the commits and metas after it.
func (s *Store) replayLog(l *loaded) error {
	dmg := &DamageError{}
	err := s.apply(func(tx *tree.Txn) error {
		res, err := wal.Replay(s.dir, l.snap.first, l.snap.present, func(p []byte) error {
			r, err := decodeWALRecord(p)
			if err != nil {
				return err
			}
			if r.kind == walCommit || r.kind == walCommitAnnotated {
				l.commits++
				if r.seq > s.seq {
					// Sequence numbers have gaps: state commits take one
					// too and are not logged.
					got, _, err := decodeRecord(r.rec, tx)
					if err != nil {
						return err
					}
					if got != r.seq {
						return fmt.Errorf("log record of commit %d holds seq %d", r.seq, got)
					}
					s.seq = r.seq
				}
			} else {
				l.metas++
			}
			s.applyMeta(r.metaKey, r.metaOp, r.meta)
			s.logBytes += int64(wal.RecordHeaderSize + len(p))
			return nil
		}, func(p []byte) error {
			// A record after the damage: counted for the report only.
			r, err := decodeWALRecord(p)
			switch {
			case err != nil:
			case r.kind == walCommit || r.kind == walCommitAnnotated:
				dmg.Commits++
				if dmg.FirstSeq == 0 {
					dmg.FirstSeq = r.seq
				}
				dmg.LastSeq = r.seq
			default:
				dmg.Metas++
			}
			return nil
		})
		l.replay = res
		return err
	})
	var we *wal.DamageError
	if errors.As(err, &we) {
		dmg.Dir, dmg.File, dmg.Offset, dmg.Reason, dmg.Unknown = s.dir, we.Path, we.Off, we.Reason, we.Unknown
		dmg.KeptSeq, dmg.log = s.seq, we
		return dmg
	}
	if err != nil {
		return fmt.Errorf("restore store %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) damagedTreeDB(err error) *DamageError {
	return &DamageError{Dir: s.dir, File: filepath.Join(s.dir, treeDB), Offset: -1, Reason: err.Error(), Snapshot: true}
}

// settle makes the loaded store writable: it creates tree.db's buckets if
// it is new, starts a new log segment (an old segment's tail, possibly
// torn by a crash, is never written again) and only then removes the
// segments the snapshot covers or that hold no records, and gives back
// the preallocated space after finished segments' records.
func (s *Store) settle(l *loaded, start time.Time) error {
	buckets := [][]byte{bucketLog, bucketSnap, bucketMeta}
	missing := false
	_ = s.db.View(func(btx *bolt.Tx) error {
		for _, b := range buckets {
			missing = missing || btx.Bucket(b) == nil
		}
		return nil
	})
	if missing {
		err := s.db.Update(func(btx *bolt.Tx) error {
			for _, b := range buckets {
				if _, err := btx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, s.noSpace(err, "create tree.db", false))
		}
	}
	var err error
	if t := l.replay.Torn; t != nil {
		s.log.Warn("store dropped a log record torn by a crash (never acknowledged)",
			"segment", t.Path, "offset", t.Off, "why", t.Reason)
	}
	s.wl, err = wal.Create(s.dir, l.replay.Next, l.replay.Prev, wal.Options{
		SegmentSize: segmentSize(s.compactAt), Logger: s.log, Base: l.snap.first})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, s.noSpace(err, "create log segment", false))
	}
	for _, id := range l.replay.Obsolete {
		if drop, err := s.droppable(id, s.retainSeq); err != nil {
			return fmt.Errorf("open store %s: %w", s.dir, err)
		} else if !drop {
			continue // the retention mark keeps it for the log's consumer
		}
		if err := os.Remove(filepath.Join(s.dir, wal.Name(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove obsolete log segment: %w", err)
		}
	}
	for _, t := range l.replay.Trim {
		if err := os.Truncate(filepath.Join(s.dir, wal.Name(t.ID)), t.End); err != nil {
			return fmt.Errorf("trim log segment: %w", err)
		}
	}
	s.log.Info("store restored", "seq", s.seq, "log_commits", l.commits, "log_metas", l.metas, "took", time.Since(start))
	return nil
}
