package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

var (
	bucketLog  = []byte("log")
	bucketSnap = []byte("snapshot")
	bucketMeta = []byte("meta")
	keySnapSeq = []byte("snapshot-seq")
	// keyWALFirst is the first log segment the snapshot does not cover.
	keyWALFirst = []byte("wal-first")
)

// OpKind is a Set operation.
type OpKind uint8

// Set operations, applied in the order given.
const (
	OpDelete OpKind = iota + 1
	OpReplace
	OpUpdate
)

// Op is one operation of a transaction on a concrete path.
type Op struct {
	Kind OpKind
	Path []*gpb.PathElem
	Val  *gpb.TypedValue // nil for deletes
}

// Validator is a semantic rule run on every config commit that changes
// something under its prefix, after schema validation and before the
// commit is persisted. It sees the tree as it will be if the commit
// succeeds and must not modify it.
type Validator func(t *tree.Tree, changes []tree.Change) error

// Options tune a Store; the zero value is sensible.
type Options struct {
	Logger *slog.Logger
	// FeedBudget is how many leaf changes the feed retains for slow
	// watchers before dropping the oldest commits (default 1<<20).
	FeedBudget int
	// CompactBytes is the log size after which a snapshot replaces the
	// log (default 64 MiB).
	CompactBytes int64
	// Now is the clock (tests).
	Now func() time.Time
}

// Store is the tree store. All methods are safe for concurrent use.
//
// Readers never wait for writers, nor writers for readers: every commit
// publishes a new version of the tree (an immutable snapshot, see package
// tree) with one atomic store, and a reader works on the version it
// loaded for as long as it likes. A version stays in memory while a
// reader holds it; what it shares with newer versions is not copied.
type Store struct {
	schema *tree.Schema
	db     *bolt.DB
	log    *slog.Logger
	now    func() time.Time

	commitMu sync.Mutex // serialises writers (config and state)
	t        *tree.Tree // the writer's tree (commitMu)
	seq      uint64     // last commit (commitMu)
	cur      atomic.Pointer[version]
	feed     *feed

	validators []validatorEntry
	dir        string

	// walMu guards the log segment being written and the metas (lock
	// order: commitMu, walMu).
	walMu  sync.Mutex
	w      *wal
	metas  map[string][]byte
	walErr error // a failed log sync: the store refuses writes from then on

	logBytes   int64 // log written since the last compaction (walMu)
	compactAt  int64
	compacting sync.Mutex
	wg         sync.WaitGroup
	closed     bool
}

type validatorEntry struct {
	prefix string
	fn     Validator
}

// version is one published state of the tree: a snapshot and the
// sequence number of the commit that made it.
type version struct {
	t   *tree.Tree
	seq uint64
}

// publish makes the writer's tree, as of commit seq, what readers see.
func (s *Store) publish() {
	s.cur.Store(&version{t: s.t.Snapshot(), seq: s.seq})
}

// Open opens (creating if needed) the store in dir and restores the tree
// and sequence from disk.
func Open(dir string, schema *tree.Schema, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FeedBudget <= 0 {
		o.FeedBudget = 1 << 20
	}
	if o.CompactBytes <= 0 {
		o.CompactBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "tree.db"), 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: locked by another process", dir)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{schema: schema, db: db, log: o.Logger, now: o.Now, t: tree.New(schema), compactAt: o.CompactBytes,
		dir: dir, metas: map[string][]byte{}}
	next, err := s.restore()
	if err != nil {
		db.Close()
		return nil, err
	}
	// A new segment on every open: an old segment's tail, possibly torn by
	// a crash, is never written again.
	if s.w, err = openSegment(dir, next, segmentSize(s.compactAt)); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s.feed = newFeed(s.seq+1, o.FeedBudget)
	s.publish()
	return s, nil
}

// restore loads the snapshot and the metas stored with it, replays the
// log after it (records bbolt still holds from before the segment files,
// then the segments) and returns the number for the next segment.
func (s *Store) restore() (uint64, error) {
	start := time.Now()
	var records int
	var first uint64
	ends := map[uint64]int64{}
	err := s.db.Update(func(btx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLog, bucketSnap, bucketMeta} {
			if _, err := btx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		tx, err := s.t.Begin(false)
		if err != nil {
			return err
		}
		defer tx.Commit()
		meta := btx.Bucket(bucketMeta)
		var snapSeq uint64
		if v := meta.Get(keySnapSeq); len(v) == 8 {
			snapSeq = binary.BigEndian.Uint64(v)
			var blob []byte
			c := btx.Bucket(bucketSnap).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				blob = append(blob, v...)
			}
			seq, _, err := decodeRecord(blob, tx)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if seq != snapSeq {
				return fmt.Errorf("snapshot: holds seq %d, meta says %d", seq, snapSeq)
			}
		}
		if v := meta.Get(keyWALFirst); len(v) == 8 {
			first = binary.BigEndian.Uint64(v)
		}
		c := meta.Cursor()
		for k, v := c.Seek([]byte("x/")); k != nil && strings.HasPrefix(string(k), "x/"); k, v = c.Next() {
			s.metas[string(k[2:])] = append([]byte(nil), v...)
		}
		s.seq = snapSeq
		c = btx.Bucket(bucketLog).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq <= snapSeq {
				continue // compaction removes these; tolerate a crash between the two
			}
			got, _, err := decodeRecord(v, tx)
			if err != nil {
				return err
			}
			if got != seq {
				return fmt.Errorf("log record under key %d holds seq %d", seq, got)
			}
			s.seq = seq
			s.logBytes += int64(len(v))
			records++
		}
		n, err := s.replaySegments(first, tx, ends)
		records += n
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restore store: %w", err)
	}
	ids, err := segments(s.dir)
	if err != nil {
		return 0, err
	}
	next := first
	for _, id := range ids {
		if id < first {
			// Covered by the snapshot; a crash after the compaction's
			// commit left it behind.
			if err := os.Remove(filepath.Join(s.dir, segmentName(id))); err != nil {
				return 0, fmt.Errorf("remove compacted log segment: %w", err)
			}
			continue
		}
		next = id + 1
		// Replayed: finished, never written again. Trimming after the
		// replay succeeded, a crash mid-way leaves a longer file only.
		if end, ok := ends[id]; ok {
			if err := trimSegment(s.dir, id, end); err != nil {
				return 0, err
			}
		}
	}
	s.log.Info("store restored", "seq", s.seq, "log_records", records, "took", time.Since(start))
	return next, nil
}

// replaySegments applies the segments from first on, in order, and notes
// where each one's intact records end.
func (s *Store) replaySegments(first uint64, tx *tree.Txn, ends map[uint64]int64) (int, error) {
	ids, err := segments(s.dir)
	if err != nil {
		return 0, err
	}
	records := 0
	for _, id := range ids {
		if id < first {
			continue
		}
		end, err := readSegment(s.dir, id, func(p []byte) error {
			r, err := decodeWALRecord(p)
			if err != nil {
				return err
			}
			if r.kind == walCommit {
				if r.seq <= s.seq {
					return nil // already in the snapshot
				}
				// Sequence numbers have gaps: state commits take one too
				// and are not logged.
				got, _, err := decodeRecord(r.rec, tx)
				if err != nil {
					return err
				}
				if got != r.seq {
					return fmt.Errorf("log record of commit %d holds seq %d", r.seq, got)
				}
				s.seq = r.seq
				records++
			}
			s.applyMeta(r.metaKey, r.metaOp, r.meta)
			s.logBytes += int64(walHeader + len(p))
			return nil
		})
		if err != nil {
			return records, err
		}
		ends[id] = end
	}
	return records, nil
}

func (s *Store) applyMeta(key string, op byte, val []byte) {
	switch op {
	case metaPut:
		s.metas[key] = append([]byte(nil), val...)
	case metaDel:
		delete(s.metas, key)
	}
}

// compactDue reports whether the log has outgrown the compaction
// threshold.
func (s *Store) compactDue() bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return s.logBytes > s.compactAt
}

// walAppend writes one log payload durably (callers hold walMu).
func (s *Store) walAppend(payload []byte) error {
	if s.walErr != nil {
		return s.walErr
	}
	if s.w == nil {
		return ErrClosed
	}
	next, err := s.w.append(payload)
	if err != nil {
		if errors.Is(err, errLogSync) {
			// Whether the record reached the disk is unknown, and a later
			// record must not pretend it did not: refuse writes until a
			// restart replays what the disk holds.
			s.walErr = fmt.Errorf("store stopped after a failed log sync: %w", err)
			s.log.Error("store stopped writing", "err", err)
		}
		return err
	}
	if next != nil {
		_ = s.w.close()
		s.w = next
	}
	s.logBytes += int64(walHeader + len(payload))
	return nil
}

// Schema returns the store's schema.
func (s *Store) Schema() *tree.Schema { return s.schema }

// Seq returns the sequence number of the last commit.
func (s *Store) Seq() uint64 { return s.cur.Load().seq }

// AddValidator registers a semantic rule for changes under a schema path
// prefix such as /kedge/routes ("" for all).
func (s *Store) AddValidator(prefix string, v Validator) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.validators = append(s.validators, validatorEntry{prefix: prefix, fn: v})
}

// Commit applies ops as one config transaction: all or nothing, schema
// and semantic validation, then an fsync'd log append, then publication
// to the feed. It returns the published commit; a transaction that
// changes nothing returns a Commit with no changes and the current seq.
func (s *Store) Commit(ctx context.Context, ops []Op) (*Commit, error) {
	return s.commit(ctx, ops, commitOpts{})
}

// UndoEncoder turns a commit's inverse operations into a blob that
// CommitUndoable stores durably together with the commit.
type UndoEncoder func(undo []Op) ([]byte, error)

// CommitUndoable is Commit that also computes the commit's inverse and
// stores encode(inverse) under the meta key in the same durable write, so
// a crash can never keep the commit but lose its rollback (gNMI
// commit-confirmed). It persists the meta even when nothing changed.
func (s *Store) CommitUndoable(ctx context.Context, ops []Op, key string, encode UndoEncoder) (*Commit, error) {
	return s.commit(ctx, ops, commitOpts{undoKey: key, undo: encode})
}

type commitOpts struct {
	state, operational bool
	undoKey            string
	undo               UndoEncoder
}

// CommitState applies ops to config false nodes (reconcilers writing
// /state). State is not persisted: reconcilers rebuild it after restart.
func (s *Store) CommitState(ctx context.Context, ops []Op) (*Commit, error) {
	return s.commit(ctx, ops, commitOpts{state: true})
}

// CommitOperational is CommitState that may also create entries of config
// lists that exist only in state (the system's own entries, such as the
// default accord of every posture level).
func (s *Store) CommitOperational(ctx context.Context, ops []Op) (*Commit, error) {
	return s.commit(ctx, ops, commitOpts{state: true, operational: true})
}

func (s *Store) commit(ctx context.Context, ops []Op, o commitOpts) (*Commit, error) {
	state := o.state
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	tx, err := s.t.Begin(state)
	if err != nil {
		return nil, err
	}
	tx.OperationalEntries = o.operational
	if err := applyOps(tx, ops); err != nil {
		tx.Rollback()
		return nil, err
	}
	if err := tx.Validate(); err != nil {
		tx.Rollback()
		return nil, err
	}
	changes := tx.Changes()
	var meta []byte
	if o.undo != nil {
		var err error
		if meta, err = o.undo(undoOps(tx.Undo())); err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("encode rollback: %w", err)
		}
	}
	if len(changes) == 0 {
		tx.Rollback()
		if o.undo != nil {
			if err := s.PutMeta(o.undoKey, meta); err != nil {
				return nil, err
			}
		}
		return &Commit{Seq: s.seq, Time: s.now(), State: state}, nil
	}
	if !state {
		if err := s.runValidators(changes); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	c := &Commit{Seq: s.seq + 1, Time: s.now(), State: state, Changes: changes}
	if !state {
		if err := s.append(c.Seq, encodeRecord(c.Seq, c.Time.UnixNano(), changes), o.undoKey, meta); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	tx.Commit()
	s.seq = c.Seq
	s.publish()
	s.feed.publish(c)
	if !state && s.compactDue() {
		s.compactAsync()
	}
	return c, nil
}

func applyOps(tx *tree.Txn, ops []Op) error {
	for _, op := range ops {
		var err error
		switch op.Kind {
		case OpDelete:
			err = tx.Delete(op.Path)
		case OpReplace:
			err = tx.Replace(op.Path, op.Val)
		case OpUpdate:
			err = tx.Update(op.Path, op.Val)
		default:
			err = fmt.Errorf("apply operation: unknown kind %d", op.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) runValidators(changes []tree.Change) error {
	var errs []error
	for _, v := range s.validators {
		hit := v.prefix == ""
		for i := 0; !hit && i < len(changes); i++ {
			hit = strings.HasPrefix(changes[i].Node.Path, v.prefix)
		}
		if hit {
			if err := v.fn(s.t, changes); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// append persists one log record, and optionally a meta change in the
// same durable write: one write and one fdatasync of the log segment.
func (s *Store) append(seq uint64, rec []byte, metaKey string, meta []byte) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if err := s.walAppend(encodeCommitRecord(seq, rec, metaKey, meta)); err != nil {
		return fmt.Errorf("persist commit %d: %w", seq, err)
	}
	if metaKey != "" {
		op := metaPut
		if meta == nil {
			op = metaDel
		}
		s.applyMeta(metaKey, op, meta)
	}
	return nil
}

// Read runs fn on the tree as of the last commit: a snapshot no writer
// will change, read with no lock. fn may take as long as it needs (it
// holds up no commit) and may keep what it read; the version it holds
// stays in memory until it lets go.
func (s *Store) Read(fn func(t *tree.Tree) error) error {
	return fn(s.cur.Load().t)
}

// ReadAt is Read that also passes the sequence number of the commit the
// snapshot is at.
func (s *Store) ReadAt(fn func(t *tree.Tree, seq uint64) error) error {
	v := s.cur.Load()
	return fn(v.t, v.seq)
}

// Watch returns a watcher that reads every commit after the current one.
func (s *Store) Watch() *Watcher {
	return &Watcher{f: s.feed, next: s.cur.Load().seq + 1}
}

// ReadWatch runs fn on a snapshot of the tree and returns a watcher
// positioned right after the commit fn saw, so a subscriber's initial
// sync and its updates neither overlap nor leave a gap. fn may stream at
// its client's pace: commits go on meanwhile, and the watcher finds them
// in the feed (or ErrResync, when it fell too far behind).
func (s *Store) ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*Watcher, error) {
	v := s.cur.Load()
	if err := fn(v.t, v.seq); err != nil {
		return nil, err
	}
	return &Watcher{f: s.feed, next: v.seq + 1}, nil
}

// PutMeta durably stores a small named blob (nil deletes it) for other
// components: a pending commit-confirmed, a posture snapshot.
func (s *Store) PutMeta(key string, val []byte) error {
	if key == "" || len(key) > 1<<15 {
		return fmt.Errorf("put meta: key must be 1..32768 bytes")
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.w == nil {
		return ErrClosed
	}
	if err := s.walAppend(encodeMetaRecord(key, val)); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	op := metaPut
	if val == nil {
		op = metaDel
	}
	s.applyMeta(key, op, val)
	return nil
}

// GetMeta returns a blob stored by PutMeta, or nil.
func (s *Store) GetMeta(key string) ([]byte, error) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if v, ok := s.metas[key]; ok {
		return append([]byte(nil), v...), nil
	}
	return nil, nil
}

// Close waits for a running compaction, ends every watcher and closes the
// database.
func (s *Store) Close() error {
	s.commitMu.Lock()
	if s.closed {
		s.commitMu.Unlock()
		return nil
	}
	s.closed = true
	s.commitMu.Unlock()
	s.wg.Wait()
	s.feed.close()
	s.walMu.Lock()
	werr := s.w.close()
	s.w = nil
	s.walMu.Unlock()
	if err := errors.Join(werr, s.db.Close()); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// undoOps converts the tree's inverse into store operations.
func undoOps(u []tree.UndoOp) []Op {
	ops := make([]Op, 0, len(u))
	for _, x := range u {
		if x.Delete {
			ops = append(ops, Op{Kind: OpDelete, Path: x.Elems})
			continue
		}
		ops = append(ops, Op{Kind: OpUpdate, Path: x.Elems, Val: tree.Typed(x.Val)})
	}
	return ops
}
