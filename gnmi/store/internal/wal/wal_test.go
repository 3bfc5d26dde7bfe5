package wal

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rec is the i-th test payload: distinct, of varying length.
func rec(i int) []byte {
	return []byte(fmt.Sprintf("record %d %s", i, strings.Repeat("x", i%37)))
}

// written appends n records to a new log in dir and returns the offset
// and segment of each.
type written struct {
	seg []uint64
	off []int64
	end []int64
}

func write(t *testing.T, l *Log, from, n int, w *written) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		id, end := l.Position()
		w.seg = append(w.seg, id)
		w.off = append(w.off, end-int64(RecordHeaderSize+len(rec(i))))
		w.end = append(w.end, end)
	}
}

func newLog(t *testing.T, dir string, size int64) *Log {
	t.Helper()
	l, err := Create(dir, 1, Link{}, Options{SegmentSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// replay returns the payloads Replay applied, as strings, and its result
// or error.
func replay(t *testing.T, dir string, first uint64) ([]string, *Result, error) {
	t.Helper()
	var got []string
	res, err := Replay(dir, first, false, func(p []byte) error {
		got = append(got, string(p))
		return nil
	}, func([]byte) error { return nil })
	return got, res, err
}

func want(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, string(rec(i)))
	}
	return s
}

func damage(t *testing.T, err error) *DamageError {
	t.Helper()
	var d *DamageError
	if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) {
		t.Fatalf("replay: %v, want a damage error", err)
	}
	return d
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func segPath(dir string, id uint64) string { return filepath.Join(dir, Name(id)) }

// TestAppendReplayAcrossSegments: records survive rollovers, including
// one bigger than a segment, in order, with the link for the next
// segment pointing at the end of the last record.
func TestAppendReplayAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1024)
	var w written
	write(t, l, 0, 40, &w)
	big := bytes.Repeat([]byte("b"), 5000)
	if err := l.Append(big); err != nil {
		t.Fatal(err)
	}
	write(t, l, 40, 5, &w)
	id, end := l.Position()
	l.Close()
	got, res, err := replay(t, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	exp := append(append(want(0, 40), string(big)), want(40, 45)...)
	if !slices.Equal(got, exp) {
		t.Fatalf("replayed %d records, want %d in order", len(got), len(exp))
	}
	if id < 3 || res.Prev != (Link{ID: id, End: end}) || res.Next != id+1 || res.Torn != nil {
		t.Fatalf("result %+v, want prev {%d %d}, next %d", res, id, end, id+1)
	}
}

// TestTornFinalRecordIsDropped: a record half written by a crash at the
// end of the newest segment (its tail never reached the disk, or its
// header did not while later sectors did) is dropped, not reported.
func TestTornFinalRecordIsDropped(t *testing.T) {
	for name, tear := range map[string]func(off, end int64) (int64, int){
		"tail not written":   func(off, end int64) (int64, int) { h := off + (end-off)/2; return h, int(end - h) },
		"header not written": func(off, end int64) (int64, int) { return off, RecordHeaderSize },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := newLog(t, dir, 1<<20)
			var w written
			write(t, l, 0, 10, &w)
			l.Close()
			at, n := tear(w.off[9], w.end[9])
			patch(t, segPath(dir, w.seg[9]), at, make([]byte, n))
			got, res, err := replay(t, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want(0, 9)) || res.Torn == nil || res.Torn.Off != w.off[9] {
				t.Fatalf("replayed %d records, torn %+v; want 9 and the tenth torn at %d", len(got), res.Torn, w.off[9])
			}
			if res.Prev != (Link{ID: w.seg[8], End: w.end[8]}) {
				t.Fatalf("prev %+v, want the end of the ninth record", res.Prev)
			}
		})
	}
}

// TestDamageBeforeTheEndIsRefused: a changed byte, a zeroed page or a
// zeroed record header with valid records after it is damage: Replay
// stops applying there, says where, counts the valid records after it,
// and changes no file.
func TestDamageBeforeTheEndIsRefused(t *testing.T) {
	for name, hurt := range map[string]func(w *written) (int64, []byte){
		"flipped byte":  func(w *written) (int64, []byte) { return w.off[40] + 20, []byte{'#'} },
		"zeroed header": func(w *written) (int64, []byte) { return w.off[40], make([]byte, RecordHeaderSize) },
		"zeroed page": func(w *written) (int64, []byte) {
			return w.off[40], make([]byte, w.end[45]-w.off[40])
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := newLog(t, dir, 1<<20)
			var w written
			write(t, l, 0, 100, &w)
			l.Close()
			at, b := hurt(&w)
			patch(t, segPath(dir, 1), at, b)
			before := hashDir(t, dir)
			got, _, err := replay(t, dir, 0)
			d := damage(t, err)
			lost := 0
			for i := range w.off {
				if w.end[i] > at && w.off[i] < at+int64(len(b)) {
					lost++
				}
			}
			if d.Path != segPath(dir, 1) || d.Off != w.off[40] || d.Dropped != 100-40-lost {
				t.Fatalf("damage %+v: want %s at %d with %d records after it", d, segPath(dir, 1), w.off[40], 100-40-lost)
			}
			if !slices.Equal(got, want(0, 40)) {
				t.Fatalf("applied %d records before the damage, want 40", len(got))
			}
			if hashDir(t, dir) != before {
				t.Fatal("replay changed a file")
			}
		})
	}
}

// TestOlderSegmentsMustEndWhereTheirSuccessorSays: a finished segment is
// never a torn tail. Cut mid-record or exactly at a record boundary, its
// successor's header gives it away; so does a missing segment.
func TestOlderSegmentsMustEndWhereTheirSuccessorSays(t *testing.T) {
	for name, hurt := range map[string]func(t *testing.T, dir string, w *written){
		"cut mid-record": func(t *testing.T, dir string, w *written) {
			if err := os.Truncate(segPath(dir, 1), w.off[10]+7); err != nil {
				t.Fatal(err)
			}
		},
		"cut at a record boundary": func(t *testing.T, dir string, w *written) {
			if err := os.Truncate(segPath(dir, 1), w.off[10]); err != nil {
				t.Fatal(err)
			}
		},
		"flipped byte in its last record": func(t *testing.T, dir string, w *written) {
			patch(t, segPath(dir, 1), w.end[19]-1, []byte{0xff})
		},
		"missing": func(t *testing.T, dir string, w *written) {
			if err := os.Remove(segPath(dir, 2)); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := newLog(t, dir, 1<<20)
			var w written
			write(t, l, 0, 20, &w)
			for range 2 {
				if _, err := l.Rotate(); err != nil {
					t.Fatal(err)
				}
				write(t, l, len(w.off), 20, &w)
			}
			l.Close()
			hurt(t, dir, &w)
			_, _, err := replay(t, dir, 0)
			d := damage(t, err)
			t.Logf("%v (dropped %d, unknown %t)", d, d.Dropped, d.Unknown)
			if name == "missing" {
				if d.Path != segPath(dir, 2) || d.Dropped != 20 || !d.Unknown {
					t.Fatalf("damage %+v: want segment 2 missing, 20 records after it", d)
				}
				return
			}
			if d.Path != segPath(dir, 1) || d.Dropped != 40 {
				t.Fatalf("damage %+v: want segment 1, with the 40 records of the later segments after it", d)
			}
			if cut := strings.HasPrefix(name, "cut"); d.Unknown != cut {
				t.Fatalf("damage %+v: unknown losses %t, want %t", d, d.Unknown, cut)
			}
		})
	}
}

// TestNewestSegmentKeepsItsSize: the newest segment is never cut back,
// so a truncated one is damage even where a torn tail would look the
// same.
func TestNewestSegmentKeepsItsSize(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1<<20)
	var w written
	write(t, l, 0, 30, &w)
	l.Close()
	if err := os.Truncate(segPath(dir, 1), w.off[20]+5); err != nil {
		t.Fatal(err)
	}
	got, _, err := replay(t, dir, 0)
	d := damage(t, err)
	if d.Off != w.off[20] || !d.Unknown {
		t.Fatalf("damage %+v: want at the cut record %d, unknown losses", d, w.off[20])
	}
	// What was applied is what recovery keeps.
	if plan, err := d.Plan(); err != nil || !slices.Equal(got, want(0, 20)) || plan.Keep != 20 {
		t.Fatalf("applied %d records, plan %+v (%v): want the 20 before the cut", len(got), plan, err)
	}
}

// TestBlankSegmentIsACutShortCreation: a segment file of zeros (a crash
// between creating and syncing it) holds nothing; the segment before it
// is still the newest, torn tail included.
func TestBlankSegmentIsACutShortCreation(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1<<20)
	var w written
	write(t, l, 0, 5, &w)
	l.Close()
	patch(t, segPath(dir, 1), w.off[4]+RecordHeaderSize, []byte("torn"))
	if err := os.WriteFile(segPath(dir, 2), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	got, res, err := replay(t, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want(0, 4)) || res.Torn == nil || !slices.Contains(res.Obsolete, 2) || res.Next != 3 {
		t.Fatalf("replayed %d, result %+v: want 4 records, a torn fifth, segment 2 obsolete, next 3", len(got), res)
	}
	// A record after a zeroed header is not a blank segment.
	patch(t, segPath(dir, 1), 0, make([]byte, HeaderSize))
	_, _, err = replay(t, dir, 0)
	if d := damage(t, err); d.Path != segPath(dir, 1) || d.Off != 0 {
		t.Fatalf("damage %+v: want segment 1's header", d)
	}
}

// TestFailedWriteLeavesNoDamage: a write that failed part way (no space)
// leaves bytes past where the next record goes; they are never read as
// damage, neither at the end of the newest segment nor past the end of
// a finished one.
func TestFailedWriteLeavesNoDamage(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1<<20)
	var w written
	write(t, l, 0, 5, &w)
	// What a failed write of a long record left: its first 600 bytes.
	id, off := l.Position()
	remnant := appendRecord(nil, id, off, bytes.Repeat([]byte("r"), 2000))[:600]
	patch(t, segPath(dir, id), off, remnant)
	write(t, l, 5, 3, &w) // shorter records over it
	l.Close()
	got, res, err := replay(t, dir, 0)
	if err != nil || !slices.Equal(got, want(0, 8)) || res.Torn == nil {
		t.Fatalf("replay: %v, %d records, torn %v: want 8 records and the remnant dropped as a torn tail", err, len(got), res)
	}
	l, err = Create(dir, res.Next, res.Prev, Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, l, 8, 2, &w)
	l.Close()
	if got, _, err := replay(t, dir, 0); err != nil || !slices.Equal(got, want(0, 10)) {
		t.Fatalf("after the next segment: %v, %d records", err, len(got))
	}
}

// legacyRecord frames a payload as the store did before segment headers.
func legacyRecord(p []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(p)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
	return append(b, p...)
}

// TestOldFormatSegments: segments written before headers are replayed;
// the newest may end in a torn record; a finished one must end cleanly;
// once a current segment links to the last of them, cutting it is seen.
func TestOldFormatSegments(t *testing.T) {
	dir := t.TempDir()
	var seg1, seg2 []byte
	for i := range 5 {
		seg1 = append(seg1, legacyRecord(rec(i))...)
	}
	for i := 5; i < 9; i++ {
		seg2 = append(seg2, legacyRecord(rec(i))...)
	}
	end2 := int64(len(seg2))
	torn := legacyRecord(rec(9))
	seg2 = append(seg2, torn[:len(torn)-3]...) // the rest stayed zeros
	if err := os.WriteFile(segPath(dir, 1), seg1, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segPath(dir, 2), append(seg2, make([]byte, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	got, res, err := replay(t, dir, 0)
	if err != nil || !slices.Equal(got, want(0, 9)) || res.Torn == nil || res.Prev != (Link{ID: 2, End: end2}) {
		t.Fatalf("replay: %v, %d records, %+v: want 9, a torn tenth, prev {2 %d}", err, len(got), res, end2)
	}
	l, err := Create(dir, res.Next, res.Prev, Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var w written
	write(t, l, 9, 3, &w)
	l.Close()
	if got, _, err := replay(t, dir, 0); err != nil || !slices.Equal(got, want(0, 12)) {
		t.Fatalf("after a current segment: %v, %d records", err, len(got))
	}
	// Cut the last old segment at a record boundary: the link says where
	// it must end.
	if err := os.Truncate(segPath(dir, 2), end2-int64(len(legacyRecord(rec(8))))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay(t, dir, 0); damage(t, err).Path != segPath(dir, 2) {
		t.Fatalf("cut old segment: %v", err)
	}
	// A finished old segment with data after its records is damage.
	patch(t, segPath(dir, 1), int64(len(seg1))+100, []byte("junk"))
	if _, _, err := replay(t, dir, 0); damage(t, err).Path != segPath(dir, 1) {
		t.Fatalf("junk in a finished old segment: %v", err)
	}
}

// TestRepairDropsExactlyWhatItReported: the plan names the files; after
// Repair the log replays the records before the damage and nothing
// else, and the originals are in the aside directory unchanged.
func TestRepairDropsExactlyWhatItReported(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1<<20)
	var w written
	write(t, l, 0, 30, &w)
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	write(t, l, 30, 10, &w)
	l.Close()
	patch(t, segPath(dir, 1), w.off[12]+3, []byte{0xee})
	orig1, orig2 := hashFile(t, segPath(dir, 1)), hashFile(t, segPath(dir, 2))
	_, _, err := replay(t, dir, 0)
	d := damage(t, err)
	plan, err := d.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if plan.Rewrite != segPath(dir, 1) || plan.Keep != 12 || !slices.Equal(plan.Move, []string{segPath(dir, 2)}) || d.Dropped != 27 {
		t.Fatalf("plan %+v, dropped %d: want segment 1 rewritten with 12 records, segment 2 moved, 27 dropped", plan, d.Dropped)
	}
	aside := filepath.Join(dir, "aside")
	if err := os.Mkdir(aside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Repair(d, aside); err != nil {
		t.Fatal(err)
	}
	got, res, err := replay(t, dir, 0)
	if err != nil || !slices.Equal(got, want(0, 12)) {
		t.Fatalf("after repair: %v, %d records, want the 12 before the damage", err, len(got))
	}
	if hashFile(t, filepath.Join(aside, Name(1))) != orig1 || hashFile(t, filepath.Join(aside, Name(2))) != orig2 {
		t.Fatal("the originals in the aside directory differ from what was there")
	}
	// The repaired log takes new segments as usual.
	l, err = Create(dir, res.Next, res.Prev, Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	write(t, l, 100, 2, &w)
	l.Close()
	if got, _, err := replay(t, dir, 0); err != nil || len(got) != 14 {
		t.Fatalf("after repair and new records: %v, %d records", err, len(got))
	}
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// hashDir hashes every file in dir with its name.
func hashDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		if !e.IsDir() {
			fmt.Fprintf(&b, "%s %s\n", e.Name(), hashFile(t, filepath.Join(dir, e.Name())))
		}
	}
	return b.String()
}

// TestDeletedNewestSegmentIsDamage: a rollover cuts the old segment back
// to its records, so when the newest file is deleted the one before it
// does not pass for the newest (it no longer has its created size).
func TestDeletedNewestSegmentIsDamage(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, 1024)
	var w written
	write(t, l, 0, 120, &w)
	id, _ := l.Position()
	l.Close()
	if id < 3 {
		t.Fatalf("only %d segments: want rollovers", id)
	}
	if st, err := os.Stat(segPath(dir, id-1)); err != nil || st.Size() >= 1024 {
		t.Fatalf("segment %d after the rollover: %v, size %d; want it cut back to its records", id-1, err, st.Size())
	}
	if err := os.Remove(segPath(dir, id)); err != nil {
		t.Fatal(err)
	}
	_, _, err := replay(t, dir, 0)
	if d := damage(t, err); d.Path != segPath(dir, id-1) || !d.Unknown {
		t.Fatalf("damage %+v: want segment %d, no longer its created size", d, id-1)
	}
}
