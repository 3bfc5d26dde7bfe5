package store

import (
	"context"
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

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

var (
	bucketLog  = []byte("log")
	bucketSnap = []byte("snapshot")
	bucketMeta = []byte("meta")
)

// OpKind is a Set operation.
type OpKind uint8

// Set operations, applied in the order given.
const (
	OpDelete OpKind = iota + 1
	OpReplace
	OpUpdate
	// OpEntry writes leaves of the instance at Path (see Entry).
	OpEntry
)

// Op is one operation of a transaction on a concrete path.
type Op struct {
	Kind OpKind
	Path []*gpb.PathElem
	Val  *gpb.TypedValue // nil for deletes
	// Leaves are an OpEntry's leaf writes, below Path.
	Leaves []tree.EntryWrite
	// Key, when set, names an OpEntry's entry instead of Path: the tree
	// finds it by its typed keys (see Keyed).
	Key *tree.EntryKey
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
	// Annotate, when set, is called for every config commit that changes
	// something, after validation and before the commit is written; what
	// it returns is stored in the same log record (no extra sync),
	// delivered as Commit.Annotation and replayed by ReplayCommits. ctx is
	// the committer's (the gNMI Set's, carrying its identity). It runs
	// under the store's write lock and must be quick.
	Annotate func(ctx context.Context, changes []tree.Change) []byte
	// KeepLog keeps the log segments holding config commits past
	// compactions until Retain releases them, so a consumer that absorbs
	// commits asynchronously (the notary) can catch up after a crash.
	KeepLog bool
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

	// walMu guards the log and the metas (lock order: commitMu, walMu).
	walMu  sync.Mutex
	wl     *wal.Log
	metas  map[string][]byte
	walErr error    // a failed log sync: the store refuses writes from then on
	full   diskFull // writes failing for lack of disk space

	// Retention (KeepLog; retain.go): the last commit seq in each
	// segment, and the mark up to which records may be dropped (walMu).
	keepLog    bool
	annotate   func(ctx context.Context, changes []tree.Change) []byte
	segLast    map[uint64]uint64
	retainSeq  uint64
	retainNote []byte

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
// and sequence from disk. A store damaged before the end of its log is
// refused with a *DamageError (errors.Is ErrDamaged) naming the file,
// the offset and what recovery would drop, and no file is changed.
func Open(dir string, schema *tree.Schema, o Options) (*Store, error) {
	start := time.Now()
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
	s := &Store{schema: schema, log: o.Logger, now: o.Now, t: tree.New(schema), compactAt: o.CompactBytes,
		dir: dir, metas: map[string][]byte{}, keepLog: o.KeepLog, annotate: o.Annotate, segLast: map[uint64]uint64{}}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	// The structure was checked (if the file existed), so bbolt's own
	// walk of it on a writable open cannot fault.
	if s.db, err = openBolt(filepath.Join(dir, treeDB), false); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.settle(l, start); err != nil {
		s.wl.Close()
		s.db.Close()
		return nil, err
	}
	s.feed = newFeed(s.seq+1, o.FeedBudget)
	s.publish()
	if l.snap.legacy {
		// Give the snapshot its checksums now rather than at the next
		// compaction, which a quiet node may not reach for a long time.
		s.log.Info("store snapshot was written without checksums; rewriting it")
		s.compactAsync()
	}
	return s, nil
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
	if s.wl == nil {
		return ErrClosed
	}
	if err := s.wl.Append(payload); err != nil {
		if errors.Is(err, wal.ErrSync) {
			// Whether the record reached the disk is unknown, and a later
			// record must not pretend it did not: refuse writes until a
			// restart replays what the disk holds.
			s.walErr = fmt.Errorf("store stopped after a failed log sync: %w", err)
			s.log.Error("store stopped writing", "err", err)
			s.walErr = s.noSpace(s.walErr, "log sync", true)
			return s.walErr
		}
		return s.noSpace(err, "log write", false)
	}
	s.wrote()
	s.logBytes += int64(wal.RecordHeaderSize + len(payload))
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

// CommitCheck decides whether a config commit may go ahead, on what it would
// actually change. It runs after schema and semantic validation and
// before the commit is made durable, under the commit lock; an error
// aborts the commit, changes nothing and is returned as it is. It must
// not modify the tree. The store knows nothing of who is asking: a
// writer that authorizes commits passes a CommitCheck closing over its caller.
type CommitCheck func(Proposed) error

// Proposed is a config commit as its CommitCheck sees it.
type Proposed struct {
	// Tree is the tree as it will be if the commit goes ahead.
	Tree *tree.Tree
	// Changes are the commit's net per-leaf changes.
	Changes []tree.Change
	tx      *tree.Txn
}

// Before returns leaf n of the instance x names as it was before the
// commit (zero for an instance the commit creates). Resolve x in Tree
// for the instance as it will be (nil for one the commit deletes).
func (p Proposed) Before(x tree.Ident, n *tree.Node) tree.Value { return p.tx.Before(x, n) }

// CommitOptions are the optional parts of a config commit.
type CommitOptions struct {
	// Check, when set, must allow the commit.
	Check CommitCheck
	// UndoKey and Undo store Undo(inverse) under the meta key in the
	// commit's durable write (see CommitUndoable).
	UndoKey string
	Undo    UndoEncoder
}

// CommitWith is Commit with options: a Check, a stored inverse, or both.
func (s *Store) CommitWith(ctx context.Context, ops []Op, o CommitOptions) (*Commit, error) {
	return s.commit(ctx, ops, commitOpts{check: o.Check, undoKey: o.UndoKey, undo: o.Undo})
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
	check              CommitCheck
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
	// A bulk commit's changes are encoded for the log while the
	// validators, the check and the annotation read them: none of them
	// writes them (the feed hands the same slice to every watcher).
	var ahead chan []byte
	if !state && len(changes) >= splitEncodeMin {
		ahead = make(chan []byte, 1)
		tail := tailBytes(o.undoKey, meta, nil) + annotationRoom
		go func() { ahead <- encodeBody(changes, tail) }()
	}
	// fail ends a commit refused past this point, once the encoding is
	// done with the changes.
	fail := func(err error) (*Commit, error) {
		if ahead != nil {
			<-ahead
		}
		tx.Rollback()
		return nil, err
	}
	if !state {
		if err := s.runValidators(changes); err != nil {
			return fail(err)
		}
		if o.check != nil {
			if err := o.check(Proposed{Tree: s.t, Changes: changes, tx: tx}); err != nil {
				return fail(err)
			}
		}
	}
	c := &Commit{Seq: s.seq + 1, Time: s.now(), State: state, Changes: changes}
	if !state {
		if s.annotate != nil {
			c.Annotation = s.annotate(ctx, changes)
		}
		var body []byte
		if ahead != nil {
			body, ahead = <-ahead, nil
		} else {
			body = encodeBody(changes, tailBytes(o.undoKey, meta, c.Annotation))
		}
		rec := finishCommit(body, c.Seq, c.Time.UnixNano(), o.undoKey, meta, c.Annotation)
		if err := s.append(c.Seq, rec, o.undoKey, meta); err != nil {
			return fail(err)
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
		case OpEntry:
			if op.Key != nil {
				err = tx.WriteKeyedEntry(op.Key, op.Leaves)
			} else {
				err = tx.WriteEntry(op.Path, op.Leaves)
			}
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

// append persists one commit's log record (payload, from encodeCommit),
// and with it the commit's meta change (metaKey, meta): one write and one
// fdatasync of the log segment.
func (s *Store) append(seq uint64, payload []byte, metaKey string, meta []byte) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if err := s.walAppend(payload); err != nil {
		return fmt.Errorf("persist commit %d: %w", seq, err)
	}
	id, _ := s.wl.Position()
	s.segLast[id] = seq
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
	s.feed.pin()
	defer s.feed.unpin()
	return s.feed.newWatcher(s.cur.Load().seq + 1)
}

// ReadWatch runs fn on a snapshot of the tree and returns a watcher
// positioned right after the commit fn saw, so a subscriber's initial
// sync and its updates neither overlap nor leave a gap. fn may stream at
// its client's pace: commits go on meanwhile, and the watcher finds them
// in the feed (or ErrResync, when it fell too far behind).
func (s *Store) ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*Watcher, error) {
	// Pinned from before the snapshot is loaded until the watcher is
	// placed: the feed keeps every commit after the snapshot meanwhile.
	s.feed.pin()
	defer s.feed.unpin()
	v := s.cur.Load()
	if err := fn(v.t, v.seq); err != nil {
		return nil, err
	}
	return s.feed.newWatcher(v.seq + 1), nil
}

// PutMeta durably stores a small named blob (nil deletes it) for other
// components: a pending commit-confirmed, a posture snapshot.
func (s *Store) PutMeta(key string, val []byte) error {
	if key == "" || len(key) > 1<<15 {
		return fmt.Errorf("put meta: key must be 1..32768 bytes")
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
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
	werr := s.wl.Close()
	s.wl = nil
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
