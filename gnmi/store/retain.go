package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Retention keeps the log of config commits for a consumer that absorbs
// them asynchronously (the notary): with Options.KeepLog a compaction
// drops a log segment only when every commit in it is at or below the
// mark the consumer set with Retain, so after a crash the consumer can
// replay (ReplayCommits) whatever it had not made durable on its side.
//
// The mark costs no sync: Retain only moves it in memory, and the next
// compaction stores it with the snapshot in the same bbolt transaction.
// A crash in between leaves an older mark, which keeps more, never less.

// keyRetain is the retention mark in the meta bucket: the seq, then the
// consumer's note.
var keyRetain = []byte("retain")

// Retain tells the store that the consumer holds every config commit up
// to seq durably; note is the consumer's own bookkeeping, stored with the
// mark (Retained returns it). A mark never moves back.
func (s *Store) Retain(seq uint64, note []byte) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if seq < s.retainSeq {
		return
	}
	s.retainSeq, s.retainNote = seq, append([]byte(nil), note...)
}

// Retained returns the retention mark: at open the one stored with the
// last snapshot, then the latest Retain.
func (s *Store) Retained() (uint64, []byte) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return s.retainSeq, append([]byte(nil), s.retainNote...)
}

// retainRecord encodes the mark for the snapshot (callers hold walMu).
func (s *Store) retainRecord() ([]byte, uint64) {
	b := binary.BigEndian.AppendUint64(nil, s.retainSeq)
	return append(b, s.retainNote...), s.retainSeq
}

// putRetain stores the mark in tree.db's meta bucket, checksummed like
// the snapshot's metas.
func putRetain(btx *bolt.Tx, rec []byte) error {
	return btx.Bucket(bucketMeta).Put(keyRetain, sealed(keyRetain, rec))
}

// loadRetain reads the mark stored with the snapshot. A damaged one is
// ignored (mark 0 keeps every segment, which loses nothing).
func (s *Store) loadRetain(meta *bolt.Bucket) {
	if meta == nil {
		return
	}
	v := meta.Get(keyRetain)
	if v == nil {
		return
	}
	rec, err := unseal(keyRetain, v)
	if err != nil || len(rec) < 8 {
		s.log.Warn("store: the log retention mark in tree.db is damaged; keeping every log segment", "err", err)
		return
	}
	s.retainSeq = binary.BigEndian.Uint64(rec)
	s.retainNote = append([]byte(nil), rec[8:]...)
}

// droppable reports whether a segment the snapshot covers may be removed:
// always without KeepLog, else when its last commit is at or below the
// mark. A segment this process did not write is read once to learn it.
func (s *Store) droppable(id, mark uint64) (bool, error) {
	if !s.keepLog {
		return true, nil
	}
	last, err := s.lastCommit(id)
	if err != nil {
		return false, err
	}
	return last <= mark, nil
}

// lastCommit returns the last config commit's seq in a segment (0 for
// none).
func (s *Store) lastCommit(id uint64) (uint64, error) {
	s.walMu.Lock()
	last, ok := s.segLast[id]
	s.walMu.Unlock()
	if ok {
		return last, nil
	}
	err := wal.Records(s.dir, id, func(p []byte) error {
		r, err := decodeWALRecord(p)
		if err != nil {
			return err
		}
		if r.kind == walCommit || r.kind == walCommitAnnotated {
			last = r.seq
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read log segment %s: %w", wal.Name(id), err)
	}
	s.walMu.Lock()
	if cur, ok := s.segLast[id]; !ok || cur < last {
		s.segLast[id] = last
	}
	s.walMu.Unlock()
	return last, nil
}

// LoggedCommit is a config commit read back from the log.
type LoggedCommit struct {
	Seq        uint64
	Time       time.Time
	Annotation []byte
	// Changes in commit order, config leaves only, as Commit.Changes
	// lists them (Path is tree.Change.Path()).
	Changes []LoggedChange
}

// LoggedChange is one leaf of a LoggedCommit.
type LoggedChange struct {
	Path   string
	Delete bool
	Val    tree.Value
}

// errStopReplay ends a replay early.
var errStopReplay = errors.New("stop replay")

// ReplayCommits calls fn with every config commit in (after, upTo] that
// the log still holds, in order. Without KeepLog the log holds only what
// the last compaction left; with it, everything after the retention mark.
// Commits written before the log moved into segment files (bbolt's log
// bucket) are not replayed: they carry no annotation.
func (s *Store) ReplayCommits(after, upTo uint64, fn func(LoggedCommit) error) error {
	ids, err := wal.List(s.dir)
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.walMu.Lock()
		last, known := s.segLast[id]
		s.walMu.Unlock()
		if known && last <= after {
			continue
		}
		err := wal.Records(s.dir, id, func(p []byte) error {
			r, err := decodeWALRecord(p)
			if err != nil {
				return err
			}
			if r.kind != walCommit && r.kind != walCommitAnnotated {
				return nil
			}
			if r.seq > upTo {
				return errStopReplay
			}
			if r.seq <= after {
				return nil
			}
			c, err := decodeChanges(r.rec)
			if err != nil {
				return err
			}
			if c.Seq != r.seq {
				return fmt.Errorf("log record of commit %d holds seq %d", r.seq, c.Seq)
			}
			c.Annotation = append([]byte(nil), r.ann...)
			return fn(c)
		})
		if errors.Is(err, errStopReplay) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay commits from %s: %w", wal.Name(id), err)
		}
	}
	return nil
}

// decodeChanges reads a commit record into plain changes (decodeRecord
// applies one to a tree instead).
func decodeChanges(b []byte) (LoggedCommit, error) {
	r := &reader{b: b}
	var c LoggedCommit
	if v := r.byte1("version"); r.err == nil && v != recordVersion {
		return c, fmt.Errorf("decode record: layout version %d, this build reads %d", v, recordVersion)
	}
	c.Seq = r.uvarint("seq")
	c.Time = time.Unix(0, r.varint("timestamp"))
	prev := ""
	for r.err == nil && len(r.b) > 0 {
		common := r.uvarint("prefix length")
		suffix := r.str("path")
		if r.err != nil {
			break
		}
		if common > uint64(len(prev)) {
			r.fail("prefix length")
			break
		}
		path := prev[:common] + suffix
		prev = path
		n := r.uvarint("leaf count")
		for i := uint64(0); i < n && r.err == nil; i++ {
			name := r.str("leaf name")
			op := r.byte1("leaf op")
			ch := LoggedChange{Path: joinLeaf(path, name), Delete: op == leafDel}
			if op == leafSet {
				ch.Val = r.value(0)
			} else if op != leafDel {
				r.fail("leaf op")
			}
			c.Changes = append(c.Changes, ch)
		}
	}
	if r.err != nil {
		return c, fmt.Errorf("decode record: %w", r.err)
	}
	return c, nil
}

func joinLeaf(inst, leaf string) string {
	if inst == "/" {
		return "/" + leaf
	}
	return inst + "/" + leaf
}
