package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// ErrDamaged: the store's files are damaged before the end of the log,
// so opening it would lose acknowledged commits. Open refuses and
// changes nothing; Check says what Recover would drop. Errors matching it
// are *DamageError.
var ErrDamaged = errors.New("store damaged")

// DamageError is where a store is damaged and what recovery drops.
type DamageError struct {
	Dir    string
	File   string // the damaged file (a missing log segment: where it belongs)
	Offset int64  // where its intact records end; -1 for tree.db
	Reason string
	// Snapshot: tree.db itself is damaged. Without its snapshot the log
	// after it cannot be applied, so recovery starts an empty store.
	Snapshot bool
	// KeptSeq is the last commit recovery keeps.
	KeptSeq uint64
	// Commits and Metas count the log records after the damage that
	// recovery drops; FirstSeq..LastSeq are the dropped commits.
	Commits, Metas    int
	FirstSeq, LastSeq uint64
	// Unknown: bytes are missing (a truncated or deleted file), so more
	// may be lost than counted.
	Unknown bool

	log *wal.DamageError
}

func (e *DamageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store %s is damaged: %s", e.Dir, e.File)
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " at offset %d", e.Offset)
	}
	fmt.Fprintf(&b, ": %s; ", e.Reason)
	if e.Snapshot {
		b.WriteString("the snapshot is the base of everything else in the store")
	} else {
		fmt.Fprintf(&b, "%s follow it", e.dropped())
		if e.Unknown {
			b.WriteString(", and more may have been in bytes that are missing")
		}
	}
	fmt.Fprintf(&b, "; nothing was changed; `kedge-daemon store check --data-dir %s` shows what `kedge-daemon store recover --data-dir %s --apply` would drop", e.Dir, e.Dir)
	return b.String()
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

func (e *DamageError) dropped() string {
	s := fmt.Sprintf("%d commits", e.Commits)
	if e.Commits > 0 {
		s += fmt.Sprintf(" (seq %d..%d)", e.FirstSeq, e.LastSeq)
	}
	return s + fmt.Sprintf(" and %d meta records", e.Metas)
}

// Report is what checking a store found.
type Report struct {
	Dir string
	// Seq is the last commit the store holds, or keeps when damaged.
	Seq uint64
	// Commits and Metas count the log records that replay applies.
	Commits, Metas int
	// Torn is a record torn by a crash at the end of the log, never
	// acknowledged, that opening the store drops ("" if none).
	Torn string
	// Damage is nil when the store opens as it is.
	Damage *DamageError
	// Rewrite and Move are what Recover does about Damage: the file
	// rewritten with the records before the damage (its original goes
	// aside) and the files moved aside whole.
	Rewrite string
	Keep    int
	Move    []string
	Create  string // an empty log segment made when none is left
	// Aside is where Recover put the originals.
	Aside string
}

// Check reads the store in dir as Open would, without changing any
// file, and reports whether it opens and, if it is damaged, what Recover
// would drop. It fails while a daemon has the store open.
func Check(dir string, schema *tree.Schema) (*Report, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("check store: %w", err)
	}
	s := &Store{schema: schema, dir: dir, t: tree.New(schema), metas: map[string][]byte{}}
	r := &Report{Dir: dir}
	l, err := s.load()
	var dmg *DamageError
	switch {
	case errors.As(err, &dmg):
		r.Damage, r.Seq = dmg, dmg.KeptSeq
		return r, r.plan()
	case err != nil:
		return nil, err
	}
	r.Seq, r.Commits, r.Metas = s.seq, l.commits, l.metas
	if t := l.replay.Torn; t != nil {
		r.Torn = fmt.Sprintf("%s at offset %d (%s)", t.Path, t.Off, t.Reason)
	}
	return r, nil
}

// plan fills in what Recover does about the damage.
func (r *Report) plan() error {
	d := r.Damage
	if d.Snapshot {
		r.Move = append(r.Move, d.File)
		ids, err := wal.List(r.Dir)
		if err != nil {
			return err
		}
		for _, id := range ids {
			r.Move = append(r.Move, filepath.Join(r.Dir, wal.Name(id)))
		}
		return nil
	}
	p, err := d.log.Plan()
	if err != nil {
		return err
	}
	r.Rewrite, r.Keep, r.Move, r.Create = p.Rewrite, p.Keep, p.Move, p.Create
	return nil
}

// Recover checks the store in dir and, if it is damaged and apply is
// set, drops what the check reported: every log record from the damage
// on (the damaged segment is rewritten with the records before it, later
// segments are moved aside), or, when tree.db is damaged, the whole
// store. Nothing is deleted: the originals go to a new directory
// damaged-<time> inside dir. Without apply it is Check. The report is
// the check's, with Aside set when something was moved.
func Recover(dir string, schema *tree.Schema, apply bool, now time.Time) (*Report, error) {
	r, err := Check(dir, schema)
	if err != nil || r.Damage == nil || !apply {
		return r, err
	}
	unlock, err := lockStore(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r.Aside = filepath.Join(dir, "damaged-"+now.UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(r.Aside, 0o700); err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	if r.Damage.Snapshot {
		for _, path := range r.Move {
			if err := wal.MoveAside(path, r.Aside); err != nil {
				return nil, fmt.Errorf("recover store: %w", err)
			}
		}
		return r, nil
	}
	if err := wal.Repair(r.Damage.log, r.Aside); err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	return r, nil
}

// lockStore takes the lock a running daemon holds on tree.db, so that
// recovery never changes files under it.
func lockStore(dir string) (unlock func(), err error) {
	f, err := os.Open(filepath.Join(dir, treeDB))
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("recover store %s: %w", dir, errLocked)
	}
	return func() { f.Close() }, nil
}
