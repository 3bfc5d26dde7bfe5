package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

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

func (s *Store) loadRetain(meta *bolt.Bucket) {
	if v := meta.Get(keyRetain); len(v) >= 8 {
		s.retainSeq = binary.BigEndian.Uint64(v)
		s.retainNote = append([]byte(nil), v[8:]...)
	}
}

// droppable reports whether a compaction may remove a segment the
// snapshot covers: always without KeepLog, else when its last commit is at
// or below the mark.
func (s *Store) droppable(id, mark uint64) bool {
	if !s.keepLog {
		return true
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	last, ok := s.segLast[id]
	return !ok || last <= mark
}

// droppableAtOpen is droppable for a segment older than the snapshot,
// which restore does not replay: its last commit is read from the file.
func (s *Store) droppableAtOpen(id uint64) (bool, error) {
	if !s.keepLog {
		return true, nil
	}
	var last uint64
	if _, err := readSegment(s.dir, id, func(p []byte) error {
		r, err := decodeWALRecord(p)
		if err != nil {
			return err
		}
		if r.kind == walCommit || r.kind == walCommitAnnotated {
			last = r.seq
		}
		return nil
	}); err != nil {
		return false, err
	}
	if last == 0 {
		return true, nil
	}
	s.segLast[id] = last
	return last <= s.retainSeq, nil
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
	ids, err := segments(s.dir)
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
		_, err := readSegment(s.dir, id, func(p []byte) error {
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
			return fmt.Errorf("replay commits: %w", err)
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
