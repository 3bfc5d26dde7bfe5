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
type Store struct {
	schema *tree.Schema
	db     *bolt.DB
	log    *slog.Logger
	now    func() time.Time

	commitMu sync.Mutex   // serialises writers (config and state)
	mu       sync.RWMutex // guards t against readers while a writer applies
	t        *tree.Tree
	seq      uint64 // last published commit
	feed     *feed

	validators []validatorEntry
	logBytes   int64
	compactAt  int64
	compacting sync.Mutex
	wg         sync.WaitGroup
	closed     bool
}

type validatorEntry struct {
	prefix string
	fn     Validator
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
	s := &Store{schema: schema, db: db, log: o.Logger, now: o.Now, t: tree.New(schema), compactAt: o.CompactBytes}
	if err := s.restore(); err != nil {
		db.Close()
		return nil, err
	}
	s.feed = newFeed(s.seq+1, o.FeedBudget)
	return s, nil
}

// restore loads the snapshot and replays the log after it.
func (s *Store) restore() error {
	start := time.Now()
	var records int
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
		var snapSeq uint64
		if v := btx.Bucket(bucketMeta).Get(keySnapSeq); len(v) == 8 {
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
		s.seq = snapSeq
		c := btx.Bucket(bucketLog).Cursor()
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
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore store: %w", err)
	}
	s.log.Info("store restored", "seq", s.seq, "log_records", records, "took", time.Since(start))
	return nil
}

// Schema returns the store's schema.
func (s *Store) Schema() *tree.Schema { return s.schema }

// Seq returns the sequence number of the last commit.
func (s *Store) Seq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	tx, err := s.t.Begin(state)
	if err != nil {
		return nil, err
	}
	tx.OperationalEntries = o.operational
	if len(ops) > 64 {
		tx.Reserve(len(ops))
	}
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
		rec := encodeRecord(c.Seq, c.Time.UnixNano(), changes)
		if err := s.append(c.Seq, rec, o.undoKey, meta); err != nil {
			tx.Rollback()
			return nil, err
		}
		s.logBytes += int64(len(rec))
	}
	tx.Commit()
	s.seq = c.Seq
	s.feed.publish(c)
	if !state && s.logBytes > s.compactAt {
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

// append persists one log record, and optionally a meta blob in the same
// transaction; bbolt fsyncs before Update returns.
func (s *Store) append(seq uint64, rec []byte, metaKey string, meta []byte) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	err := s.db.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketLog)
		b.FillPercent = 1 // keys only ever grow: pack pages full
		if err := b.Put(k[:], rec); err != nil {
			return err
		}
		switch {
		case metaKey == "":
			return nil
		case meta == nil:
			return btx.Bucket(bucketMeta).Delete([]byte("x/" + metaKey))
		}
		return btx.Bucket(bucketMeta).Put([]byte("x/"+metaKey), meta)
	})
	if err != nil {
		return fmt.Errorf("persist commit %d: %w", seq, err)
	}
	return nil
}

// Read runs fn with the tree under the read lock. fn must not keep
// references to instances' values beyond the call.
func (s *Store) Read(fn func(t *tree.Tree) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s.t)
}

// Watch returns a watcher that reads every commit after the current one.
func (s *Store) Watch() *Watcher {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &Watcher{f: s.feed, next: s.seq + 1}
}

// ReadWatch runs fn on the tree and returns a watcher positioned right
// after the state fn saw, so a subscriber's initial sync and its updates
// neither overlap nor leave a gap.
func (s *Store) ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*Watcher, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := fn(s.t, s.seq); err != nil {
		return nil, err
	}
	return &Watcher{f: s.feed, next: s.seq + 1}, nil
}

// PutMeta durably stores a small named blob (nil deletes it) for other
// components: a pending commit-confirmed, a posture snapshot.
func (s *Store) PutMeta(key string, val []byte) error {
	err := s.db.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketMeta)
		if val == nil {
			return b.Delete([]byte("x/" + key))
		}
		return b.Put([]byte("x/"+key), val)
	})
	if err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}

// GetMeta returns a blob stored by PutMeta, or nil.
func (s *Store) GetMeta(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(btx *bolt.Tx) error {
		if v := btx.Bucket(bucketMeta).Get([]byte("x/" + key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get meta %s: %w", key, err)
	}
	return out, nil
}

// Close waits for a running compaction, ends every watcher and closes the
// database.
func (s *Store) Close() error {
	s.commitMu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.commitMu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.commitMu.Unlock()
	s.wg.Wait()
	s.feed.close()
	if err := s.db.Close(); err != nil {
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
