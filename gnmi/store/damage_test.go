package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
)

// logCapture is a slog handler that keeps every record.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

// find returns the records at level whose message and attributes contain
// every string in want.
func (c *logCapture) find(level slog.Level, want ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		if r.Level != level {
			continue
		}
		line := r.Message
		r.Attrs(func(a slog.Attr) bool {
			line += " " + a.String()
			return true
		})
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// commitLog commits n single-leaf commits (route i gets device "dev-i")
// and returns where each commit's record starts and ends in its segment.
type commitLog struct {
	seg      []uint64
	off, end []int64
	seq      []uint64
}

func commitN(t *testing.T, s *Store, from, n int, cl *commitLog) {
	t.Helper()
	for i := from; i < from+n; i++ {
		_, off := s.wl.Position()
		c := mustCommit(t, s, upd(t, route(i)+"/config/device", str("dev-"+itoa(i))))
		id, end := s.wl.Position()
		if end < off { // a new segment: the record starts after its header
			off = wal.HeaderSize
		}
		cl.seg, cl.off, cl.end, cl.seq = append(cl.seg, id), append(cl.off, off), append(cl.end, end), append(cl.seq, c.Seq)
	}
}

// hashStore hashes every file in dir, so a test can tell that a refused
// open changed nothing, not even by adding a file.
func hashStore(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		if e.IsDir() {
			fmt.Fprintf(&b, "%s/\n", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %x\n", e.Name(), len(data), sha256.Sum256(data))
	}
	return b.String()
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// refused opens dir expecting a *DamageError, and checks that no file
// changed.
func refused(t *testing.T, dir string) *DamageError {
	t.Helper()
	before := hashStore(t, dir)
	s, err := Open(dir, testSchema(t), Options{})
	if err == nil {
		s.Close()
		t.Fatal("open of a damaged store succeeded")
	}
	var d *DamageError
	if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) {
		t.Fatalf("open: %v, want a damage error", err)
	}
	if after := hashStore(t, dir); after != before {
		t.Fatalf("a refused open changed the store's files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	return d
}

// TestFlippedByteMidLogRefusesToStart: one changed byte inside an
// acknowledged commit in the middle of the log used to be taken for a
// torn tail: the commits after it were dropped and the file truncated.
// Now Open refuses, naming the file, the offset and the commits after
// it, and changes nothing.
func TestFlippedByteMidLogRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	var cl commitLog
	commitN(t, s, 0, 200, &cl)
	s.Close()
	path := filepath.Join(dir, wal.Name(cl.seg[100]))
	flip(t, path, cl.off[100]+(cl.end[100]-cl.off[100])/2)
	d := refused(t, dir)
	if d.File != path || d.Offset != cl.off[100] || d.Commits != 99 || d.FirstSeq != cl.seq[101] || d.LastSeq != cl.seq[199] ||
		d.KeptSeq != cl.seq[99] || d.Unknown {
		t.Fatalf("damage %+v: want %s at %d, 99 commits (seq %d..%d) after it, seq %d kept", d, path, cl.off[100], cl.seq[101], cl.seq[199], cl.seq[99])
	}
	msg := d.Error()
	for _, w := range []string{path, fmt.Sprintf("offset %d", cl.off[100]), "99 commits", "kedge-daemon store check --data-dir " + dir, "nothing was changed"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
	// Check says the same without opening.
	r, err := Check(dir, testSchema(t))
	if err != nil || r.Damage == nil || r.Damage.Offset != d.Offset || r.Damage.Commits != d.Commits {
		t.Fatalf("check: %v, %+v", err, r)
	}
}

// TestTruncatedOlderSegmentRefusesToStart: an older segment cut short,
// in the middle of a record or exactly at a record boundary, used to be
// replayed up to the cut (and trimmed): every commit after the cut,
// including the whole newer segments, was lost. A finished segment is
// never a torn tail.
func TestTruncatedOlderSegmentRefusesToStart(t *testing.T) {
	for _, cut := range []string{"mid-record", "record boundary"} {
		t.Run(cut, func(t *testing.T) {
			dir := t.TempDir()
			var cl commitLog
			s := reopen(t, dir)
			commitN(t, s, 0, 60, &cl)
			s.Close()
			s = reopen(t, dir) // the first segment is finished now
			commitN(t, s, 60, 40, &cl)
			s.Close()
			older := filepath.Join(dir, wal.Name(cl.seg[0]))
			at := cl.off[30]
			if cut == "mid-record" {
				at += 9
			}
			if err := os.Truncate(older, at); err != nil {
				t.Fatal(err)
			}
			d := refused(t, dir)
			if d.File != older || d.Offset != cl.off[30] || d.Commits != 40 || !d.Unknown || d.KeptSeq != cl.seq[29] {
				t.Fatalf("damage %+v: want %s at %d, the 40 commits of the newer segment after it and an unknown number more", d, older, cl.off[30])
			}
		})
	}
}

// TestTornFinalRecordIsDroppedAndReported: a crash leaves the record
// being written half on disk; it was never acknowledged. Start works,
// every acknowledged commit is there, and the drop is logged at WARN
// with the file and offset (it used to be silent).
func TestTornFinalRecordIsDroppedAndReported(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	var cl commitLog
	commitN(t, s, 0, 50, &cl)
	want := dump(s)
	// The 51st commit's write is the one the crash tears: its record's
	// second half never reached the disk.
	commitN(t, s, 50, 1, &cl)
	s.Close()
	path := filepath.Join(dir, wal.Name(cl.seg[50]))
	half := cl.off[50] + (cl.end[50]-cl.off[50])/2
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, cl.end[50]-half), half); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := Check(dir, testSchema(t))
	if err != nil || r.Damage != nil || !strings.Contains(r.Torn, fmt.Sprintf("%s at offset %d", path, cl.off[50])) {
		t.Fatalf("check: %v, %+v: want no damage and the torn record at %d", err, r, cl.off[50])
	}
	logs := &logCapture{}
	s, err = Open(dir, testSchema(t), Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if dump(s) != want || s.Seq() != cl.seq[49] {
		t.Fatalf("after a torn final record: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
	if got := logs.find(slog.LevelWarn, "torn", path, fmt.Sprintf("offset=%d", cl.off[50])); len(got) != 1 {
		t.Fatalf("warnings about the torn record: %q", logs.find(slog.LevelWarn))
	}
}

// TestRecoverDropsExactlyWhatTheDryRunSaid: the dry run (Check, and
// Recover without apply) reports the damage and the plan; Recover with
// apply then drops exactly that: the store opens with the commits before
// the damage and none after, and the originals are kept aside unchanged.
func TestRecoverDropsExactlyWhatTheDryRunSaid(t *testing.T) {
	dir := t.TempDir()
	var cl commitLog
	s := reopen(t, dir)
	commitN(t, s, 0, 80, &cl)
	if err := s.PutMeta("k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = reopen(t, dir)
	commitN(t, s, 80, 20, &cl)
	if err := s.PutMeta("k", []byte("after")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damaged := filepath.Join(dir, wal.Name(cl.seg[50]))
	flip(t, damaged, cl.off[50]+wal.RecordHeaderSize+3)
	originals := hashStore(t, dir)

	check, err := Check(dir, testSchema(t))
	if err != nil || check.Damage == nil {
		t.Fatalf("check: %v, %+v", err, check)
	}
	dry, err := Recover(dir, testSchema(t), false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if hashStore(t, dir) != originals {
		t.Fatal("a dry run changed files")
	}
	newer := filepath.Join(dir, wal.Name(cl.seg[99]))
	d := dry.Damage
	if d.File != damaged || d.Commits != 49 || d.Metas != 2 || d.FirstSeq != cl.seq[51] || d.LastSeq != cl.seq[99] ||
		dry.Rewrite != damaged || dry.Keep != 50 || !slices.Equal(dry.Move, []string{newer}) {
		t.Fatalf("dry run %+v, damage %+v: want %s rewritten with 50 records, %s moved, 49 commits and 2 metas dropped", dry, d, damaged, newer)
	}
	if exported(check.Damage) != exported(d) {
		t.Fatalf("check and dry run differ:\n%+v\n%+v", *check.Damage, *d)
	}

	applied, err := Recover(dir, testSchema(t), true, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if exported(applied.Damage) != exported(d) || applied.Rewrite != dry.Rewrite || applied.Keep != dry.Keep ||
		!slices.Equal(applied.Move, dry.Move) || applied.Aside != filepath.Join(dir, "damaged-20300102T030405Z") {
		t.Fatalf("apply reported %+v, the dry run %+v", applied, dry)
	}
	s, err = Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatalf("open after recovery: %v", err)
	}
	defer s.Close()
	if s.Seq() != d.KeptSeq || s.Seq() != cl.seq[49] {
		t.Fatalf("after recovery seq %d, want the kept %d", s.Seq(), d.KeptSeq)
	}
	tree := dump(s)
	for i := range 100 {
		if has := strings.Contains(tree+"\n", "=dev-"+itoa(i)+"\n"); has != (i < 50) {
			t.Fatalf("after recovery route %d present %t, want %t", i, has, i < 50)
		}
	}
	if v := getMeta(t, s, "k"); v != "" {
		t.Fatalf("meta k = %q after recovery; both puts came after the damage", v)
	}
	// The originals are aside, byte for byte.
	for _, name := range []string{filepath.Base(damaged), filepath.Base(newer)} {
		got, _ := os.ReadFile(filepath.Join(applied.Aside, name))
		if !strings.Contains(originals, fmt.Sprintf("%s %d %x", name, len(got), sha256.Sum256(got))) {
			t.Errorf("%s in %s differs from the original", name, applied.Aside)
		}
	}
}

// exported renders a damage's exported fields.
func exported(d *DamageError) string {
	c := *d
	c.log = nil
	return fmt.Sprintf("%+v", c)
}

// snapshotStore makes a store whose tree.db holds a snapshot with a
// marker value and a meta.
func snapshotStore(t *testing.T, routes int) string {
	t.Helper()
	dir := t.TempDir()
	s := reopen(t, dir)
	ops := []Op{upd(t, route(0)+"/config/device", str("snapmarker1"))}
	for i := 1; i < routes; i++ {
		ops = append(ops, upd(t, route(i)+"/config/device", str("eth"+itoa(i))))
	}
	mustCommit(t, s, ops...)
	if err := s.PutMeta("m", []byte("meta-marker-value")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dir
}

// TestSnapshotByteFlipRefusesToStart: one changed byte inside a value of
// tree.db's snapshot, or of a meta stored with it, used to start clean
// with the wrong value.
func TestSnapshotByteFlipRefusesToStart(t *testing.T) {
	for _, marker := range []string{"snapmarker1", "meta-marker-value"} {
		t.Run(marker, func(t *testing.T) {
			dir := snapshotStore(t, 10)
			path := filepath.Join(dir, treeDB)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := bytes.Index(data, []byte(marker))
			if at < 0 || bytes.LastIndex(data, []byte(marker)) != at {
				t.Fatalf("marker %q found at %d: want exactly one copy in tree.db", marker, at)
			}
			flip(t, path, int64(at+3))
			d := refused(t, dir)
			if !d.Snapshot || d.File != path || !strings.Contains(d.Reason, "checksum mismatch") {
				t.Fatalf("damage %+v: want tree.db's checksum", d)
			}
			// Without its snapshot nothing else can be applied: recovery
			// moves tree.db and the log aside and the store starts empty.
			r, err := Recover(dir, testSchema(t), true, time.Now())
			if err != nil || len(r.Move) < 2 || r.Move[0] != path {
				t.Fatalf("recover: %v, %+v", err, r)
			}
			s, err := Open(dir, testSchema(t), Options{})
			if err != nil {
				t.Fatalf("open after recovery: %v", err)
			}
			defer s.Close()
			if s.Seq() != 0 || dump(s) != "" {
				t.Fatalf("after recovering a damaged snapshot: seq %d, tree:\n%s", s.Seq(), dump(s))
			}
			if _, err := os.Stat(filepath.Join(r.Aside, treeDB)); err != nil {
				t.Fatalf("the damaged tree.db was not kept aside: %v", err)
			}
		})
	}
}

// TestLogWithoutItsSnapshotIsDamage: a log whose segments were made
// after a snapshot that is gone (tree.db deleted, or replaced by an older
// copy) must not be replayed onto an empty tree as if it were complete.
func TestLogWithoutItsSnapshotIsDamage(t *testing.T) {
	for _, compactions := range []int{1, 2} {
		t.Run(fmt.Sprint(compactions), func(t *testing.T) {
			dir := t.TempDir()
			s := reopen(t, dir)
			var cl commitLog
			for range compactions {
				commitN(t, s, len(cl.seq), 20, &cl)
				if err := s.Compact(); err != nil {
					t.Fatal(err)
				}
			}
			commitN(t, s, len(cl.seq), 5, &cl)
			s.Close()
			if err := os.Remove(filepath.Join(dir, treeDB)); err != nil {
				t.Fatal(err)
			}
			d := refused(t, dir)
			// After one compaction the segment it started links to one
			// that is gone; after two, the segments also say which
			// snapshot they follow.
			if d.Commits != 5 || !strings.Contains(d.Reason, map[int]string{1: "missing", 2: "snapshot"}[compactions]) {
				t.Fatalf("damage %+v: want the log refused for its missing snapshot, 5 commits after it", d)
			}
		})
	}
}

// TestTruncatedTreeDBIsAnError: a tree.db cut short made bbolt fault
// (exit 2, nothing to recover); now Open and Check return an error
// naming the file, whatever the cut.
func TestTruncatedTreeDBIsAnError(t *testing.T) {
	dir := snapshotStore(t, 3000)
	path := filepath.Join(dir, treeDB)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, frac := range []int{2, 3, 4, 8, 16, 32} {
		if err := os.WriteFile(path, orig[:len(orig)/frac], 0o600); err != nil {
			t.Fatal(err)
		}
		d := refused(t, dir)
		if !d.Snapshot || d.File != path {
			t.Fatalf("cut to 1/%d: damage %+v, want tree.db", frac, d)
		}
		if r, err := Check(dir, testSchema(t)); err != nil || r.Damage == nil || !r.Damage.Snapshot {
			t.Fatalf("cut to 1/%d: check %v, %+v", frac, err, r)
		}
	}
}

// TestTreeDBByteFlipsNeverCrashOrLie flips one byte at a time at random
// places of a tree.db holding a snapshot, metas and a log after it:
// every check either reports damage or restores exactly the original
// store (the byte was in unused space). bbolt never faults or panics.
func TestTreeDBByteFlipsNeverCrashOrLie(t *testing.T) {
	dir := t.TempDir()
	s, cl := compactedStore(t, dir)
	commitN(t, s, 300, 20, cl)
	want, seq := dump(s), s.Seq()
	s.Close()
	path := filepath.Join(dir, treeDB)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 11))
	damaged := 0
	for range 300 {
		b := bytes.Clone(orig)
		b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Check(dir, testSchema(t))
		switch {
		case err != nil:
			t.Fatalf("check: %v (an error other than damage)", err)
		case r.Damage != nil:
			damaged++
		case r.Seq != seq:
			t.Fatalf("a flipped byte in tree.db passed the check with seq %d, want %d", r.Seq, seq)
		default:
			s, err := Open(dir, testSchema(t), Options{})
			if err != nil {
				t.Fatalf("open after a clean check: %v", err)
			}
			got := dump(s)
			s.Close()
			if got != want {
				t.Fatal("a flipped byte in tree.db passed the check and changed the tree")
			}
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("300 flips: %d reported as damage, the rest in unused space", damaged)
}

// TestLogByteFlipsNeverLoseSilently flips one byte at a time at random
// places of the written part of the log (a record or a segment header):
// each is reported as damage, except in the very last record, which is
// indistinguishable from a write torn by a crash and is dropped with a
// warning (only that one commit, and reported by Check).
func TestLogByteFlipsNeverLoseSilently(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	var cl commitLog
	commitN(t, s, 0, 100, &cl)
	s.Close()
	s = reopen(t, dir)
	commitN(t, s, 100, 100, &cl)
	s.Close()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 13))
	counts := map[string]int{}
	for range 200 {
		i := rng.IntN(200) // a byte of commit i's record, or of its segment's header
		if rng.IntN(5) == 0 {
			i = 199
		}
		path := filepath.Join(dir, wal.Name(cl.seg[i]))
		at := cl.off[i] + rng.Int64N(cl.end[i]-cl.off[i])
		if rng.IntN(10) == 0 {
			at = rng.Int64N(wal.HeaderSize)
		}
		x := byte(1 + rng.IntN(255))
		xor(t, path, at, x)
		r, err := Check(dir, testSchema(t))
		switch {
		case err != nil:
			t.Fatalf("check: %v", err)
		case r.Damage != nil:
			counts["damage"]++
		case i == 199 && at >= cl.off[199] && r.Torn != "" && r.Seq == cl.seq[198]:
			counts["last record dropped as torn"]++
		default:
			t.Fatalf("byte %d of %s (commit %d) changed: check says seq %d, torn %q, no damage", at, path, i, r.Seq, r.Torn)
		}
		xor(t, path, at, x)
	}
	t.Logf("200 flips: %v", counts)
}

// xor changes the byte at off of path in place.
func xor(t *testing.T, path string, off int64, x byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= x
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedNewestSegmentRefusesToStart: the newest segment, the big
// preallocated file, deleted while the daemon was stopped. After a
// compaction it is the only segment; after a restart it is the one the
// previous segment was cut back for. Either way the commits in it were
// lost silently before; now Open refuses, and recovery keeps what is
// left and makes an empty segment for the log to go on in.
func TestDeletedNewestSegmentRefusesToStart(t *testing.T) {
	for _, after := range []string{"compaction", "restart"} {
		t.Run(after, func(t *testing.T) {
			dir := t.TempDir()
			s := reopen(t, dir)
			var cl commitLog
			commitN(t, s, 0, 20, &cl)
			if after == "compaction" {
				if err := s.Compact(); err != nil {
					t.Fatal(err)
				}
			} else {
				s.Close()
				s = reopen(t, dir)
			}
			kept := s.Seq()
			commitN(t, s, 20, 10, &cl)
			s.Close()
			if err := os.Remove(filepath.Join(dir, wal.Name(cl.seg[29]))); err != nil {
				t.Fatal(err)
			}
			d := refused(t, dir)
			if !d.Unknown || d.KeptSeq != kept {
				t.Fatalf("damage %+v: want unknown losses after seq %d", d, kept)
			}
			if _, err := Recover(dir, testSchema(t), true, time.Now()); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, testSchema(t), Options{})
			if err != nil {
				t.Fatalf("open after recovery: %v", err)
			}
			defer s.Close()
			if s.Seq() != kept {
				t.Fatalf("after recovery seq %d, want %d", s.Seq(), kept)
			}
			mustCommit(t, s, upd(t, route(99)+"/config/device", str("eth99")))
		})
	}
}

// TestTreeDBKeyOrderIsChecked puts a branch page's keys out of order,
// as a flipped byte in a key can (CI found one: the check passed and
// bbolt's writable open then refused the file in its free-list walk).
// The check must report it as damage, and Open must refuse the store
// the same way, before bbolt sees the file.
func TestTreeDBKeyOrderIsChecked(t *testing.T) {
	dir := t.TempDir()
	s, _ := compactedStore(t, dir)
	s.Close()
	path := filepath.Join(dir, treeDB)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	tried := 0
	for off := 2 * ps; off+ps <= len(orig); off += ps {
		p := orig[off : off+ps]
		if binary.LittleEndian.Uint16(p[8:]) != boltBranch || binary.LittleEndian.Uint16(p[10:]) < 2 {
			continue
		}
		// Raise element 1's key to all 0xff bytes: the keys of its
		// child page are now below it (and any later element's key
		// too), while each key still reads as a plausible key.
		b := bytes.Clone(orig)
		e := off + boltPageHeader + boltElement
		pos, ksize := int(binary.LittleEndian.Uint32(b[e:])), int(binary.LittleEndian.Uint32(b[e+4:]))
		for k := e + pos; k < e+pos+ksize; k++ {
			b[k] = 0xff
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tried++
		r, err := Check(dir, testSchema(t))
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if r.Damage == nil {
			t.Fatalf("branch page at offset %d with a key out of order passed the check", off)
		}
		if s, err := Open(dir, testSchema(t), Options{}); err == nil {
			s.Close()
			t.Fatalf("branch page at offset %d with a key out of order: the store opened", off)
		} else if !errors.Is(err, ErrDamaged) {
			t.Fatalf("open: %v, want an error matching ErrDamaged", err)
		}
	}
	if tried == 0 {
		t.Fatal("tree.db has no branch page with two elements: the test needs a bigger tree")
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := Check(dir, testSchema(t)); err != nil || r.Damage != nil {
		t.Fatalf("the undamaged file: %v %v", err, r.Damage)
	}
}

// compactedStore makes a store in dir with 300 commits and 20 metas of
// growing size compacted into tree.db, so the file has branch pages and
// overflow pages to damage.
func compactedStore(t *testing.T, dir string) (*Store, *commitLog) {
	t.Helper()
	s := reopen(t, dir)
	var cl commitLog
	commitN(t, s, 0, 300, &cl)
	for i := range 20 {
		if err := s.PutMeta("m"+itoa(i), bytes.Repeat([]byte{byte(i)}, 100*i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	return s, &cl
}
