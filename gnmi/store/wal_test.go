package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	return s
}

func getMeta(t *testing.T, s *Store, key string) string {
	t.Helper()
	v, err := s.GetMeta(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// TestMetasAcrossCompactionAndRestart: metas written before a snapshot
// live in bbolt with it, later ones in the log; a delete after the
// snapshot must stay a delete; compacted segments are removed.
func TestMetasAcrossCompactionAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
		if err := s.PutMeta(kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth1")))
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("a", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("b", []byte("22")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, upd(t, route(2)+"/config/device", str("eth2")))
	want := dump(s)
	s.Close()
	s = reopen(t, dir)
	defer s.Close()
	for k, v := range map[string]string{"a": "", "b": "22", "c": "3"} {
		if got := getMeta(t, s, k); got != v {
			t.Errorf("meta %s = %q, want %q", k, got, v)
		}
	}
	if dump(s) != want || s.Seq() != 2 {
		t.Fatalf("after compaction and restart: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
	ids, err := wal.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The segment written after the compaction, and this open's own.
	if len(ids) != 2 {
		t.Errorf("segments %v: compacted ones must be removed", ids)
	}
}

// TestTornTailIsIgnored: a crash can leave the record being written
// half on disk after the last acknowledged one; it must be dropped, not
// fail the restart or shadow later writes.
func TestTornTailIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	for i := range 3 {
		mustCommit(t, s, upd(t, route(i)+"/config/device", str("eth"+itoa(i))))
	}
	want := dump(s)
	id, off := s.wl.Position()
	// The fourth commit's record is the one a crash tears: only its
	// first half reaches the disk (the rest stays preallocated zeros).
	mustCommit(t, s, upd(t, route(3)+"/config/device", str("eth3")))
	_, end := s.wl.Position()
	s.Close()
	f, err := os.OpenFile(filepath.Join(dir, wal.Name(id)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := off + (end-off)/2
	if _, err := f.WriteAt(make([]byte, end-half), half); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = reopen(t, dir)
	if dump(s) != want || s.Seq() != 3 {
		t.Fatalf("after a torn tail: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
	mustCommit(t, s, upd(t, route(9)+"/config/device", str("eth9")))
	want = dump(s)
	s.Close()
	s = reopen(t, dir)
	defer s.Close()
	if dump(s) != want || s.Seq() != 4 {
		t.Fatalf("a commit after the torn tail: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
}

// TestLogInBoltIsReplayed: a store written before the log moved to
// segment files keeps its records in bbolt; they are replayed, later
// commits go to segments, and a compaction drops them.
func TestLogInBoltIsReplayed(t *testing.T) {
	dir := t.TempDir()
	// Write two commits the old way: records in bbolt's log bucket.
	s := reopen(t, dir)
	c1 := mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth1")))
	c2 := mustCommit(t, s, upd(t, route(2)+"/config/device", str("eth2")))
	want := dump(s)
	s.Close()
	ids, _ := wal.List(dir)
	for _, id := range ids {
		os.Remove(filepath.Join(dir, wal.Name(id)))
	}
	db, err := bolt.Open(filepath.Join(dir, "tree.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		for _, c := range []*Commit{c1, c2} {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], c.Seq)
			if err := btx.Bucket(bucketLog).Put(k[:], encodeRecord(c.Seq, c.Time.UnixNano(), c.Changes)); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if dump(s) != want || s.Seq() != 2 {
		t.Fatalf("old log: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
	mustCommit(t, s, upd(t, route(3)+"/config/device", str("eth3")))
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	want = dump(s)
	s.Close()
	s = reopen(t, dir)
	defer s.Close()
	if dump(s) != want || s.Seq() != 3 {
		t.Fatalf("after compaction: seq %d, tree equal %t", s.Seq(), dump(s) == want)
	}
	_ = s.db.View(func(btx *bolt.Tx) error {
		if k, _ := btx.Bucket(bucketLog).Cursor().First(); k != nil {
			t.Errorf("compaction left old log records in bbolt")
		}
		return nil
	})
}

// TestRestartsKeepOneEmptySegment: every open starts a preallocated
// segment; the ones that stayed empty, and the unused space of the
// others, must be given back at the next open.
func TestRestartsKeepOneEmptySegment(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		s := reopen(t, dir)
		if i == 2 {
			mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth1")))
		}
		s.Close()
	}
	s := reopen(t, dir)
	defer s.Close()
	ids, err := wal.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("segments %v, want the one with the commit and this open's", ids)
	}
	st, err := os.Stat(filepath.Join(dir, wal.Name(ids[0])))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 4096 {
		t.Errorf("finished segment is %d bytes: its preallocation was not given back", st.Size())
	}
	if !strings.Contains(dump(s), "eth1") || s.Seq() != 1 {
		t.Fatalf("after restarts: seq %d (want 1), tree:\n%s", s.Seq(), dump(s))
	}
}

// TestFailedSyncStopsWrites: after an fdatasync error nobody knows
// whether the record reached the disk, so the store fails that commit,
// refuses every later write (no commit may be acknowledged on top of a
// record of unknown fate), and a restart replays whatever the disk holds.
func TestFailedSyncStopsWrites(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	mustCommit(t, s, upd(t, route(1)+"/config/device", str("eth1")))
	before := dump(s)
	restore := wal.SetSyncForTest(func(int) error { return unix.EIO })
	_, err := s.Commit(context.Background(), []Op{upd(t, route(2)+"/config/device", str("eth2"))})
	restore()
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("commit with a failing sync: %v, want EIO", err)
	}
	if dump(s) != before {
		t.Fatal("a commit that failed to sync changed the tree")
	}
	for name, write := range map[string]func() error{
		"commit": func() error {
			_, err := s.Commit(context.Background(), []Op{upd(t, route(3)+"/config/device", str("eth3"))})
			return err
		},
		"put meta": func() error { return s.PutMeta("k", []byte("v")) },
	} {
		if err := write(); err == nil || !strings.Contains(err.Error(), "store stopped") {
			t.Errorf("%s after a failed sync: %v, want the store stopped", name, err)
		}
	}
	s.Close()
	s = reopen(t, dir)
	defer s.Close()
	if !strings.Contains(dump(s), "eth1") || strings.Contains(dump(s), "eth3") {
		t.Fatalf("after restart:\n%s", dump(s))
	}
	mustCommit(t, s, upd(t, route(4)+"/config/device", str("eth4")))
}

// frameCommit is how a commit's log record was framed before encodeCommit
// encoded it in place: the record encoded on its own, then copied after
// the frame's head. The log's format is that framing.
func frameCommit(seq uint64, rec []byte, metaKey string, meta, ann []byte) []byte {
	var b []byte
	kind := walCommit
	if ann != nil {
		kind = walCommitAnnotated
	}
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
	b = append(b, rec...)
	if ann != nil {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ann)))
		b = append(b, ann...)
	}
	return appendMeta(b, metaKey, meta)
}

// TestEncodeCommitIsTheFramedRecord: a commit's log record encoded in
// place is byte for byte the record framed after it was encoded, with and
// without an annotation and a meta change, for an empty commit and for
// commits under and over the encoder's size estimate; and it decodes.
func TestEncodeCommitIsTheFramedRecord(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var commits [][]tree.Change
	commits = append(commits, nil)
	for _, n := range []int{1, 50, 2000} {
		var ops []Op
		for i := range n {
			ops = append(ops, upd(t, route(i+len(commits)*10000)+"/config/device", str("eth"+itoa(i%3))))
		}
		commits = append(commits, mustCommit(t, s, ops...).Changes)
	}
	for i, changes := range commits {
		for _, m := range []struct {
			key       string
			meta, ann []byte
		}{
			{}, {ann: []byte("who")}, {ann: []byte{}}, {key: "k", meta: []byte("v")}, {key: "k"},
			{key: "k", meta: []byte("v"), ann: []byte("who")},
		} {
			seq := uint64(i + 7)
			got := encodeCommit(seq, 99, changes, m.key, m.meta, m.ann)
			want := frameCommit(seq, encodeRecord(seq, 99, changes), m.key, m.meta, m.ann)
			if !bytes.Equal(got, want) {
				t.Fatalf("commit %d (%d changes), meta %q %q, annotation %q: encoded\n%x\nframed\n%x",
					i, len(changes), m.key, m.meta, m.ann, got, want)
			}
			if _, err := decodeWALRecord(got); err != nil {
				t.Fatalf("commit %d: decode: %v", i, err)
			}
		}
	}
}
