package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestStoreOfTheStartingCommitOpens: testdata/store-4568498 was written
// by the store before segment headers and snapshot checksums (commit
// 4568498: a snapshot with metas, old-format log records after it, a
// commit with its undo meta, a deleted meta). It opens with the same
// tree, sequence and metas; its snapshot is rewritten with checksums at
// once, and new segments are in the current format.
func TestStoreOfTheStartingCommitOpens(t *testing.T) {
	fixture := filepath.Join("testdata", "store-4568498")
	want, err := os.ReadFile(filepath.Join(fixture, "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"tree.db", "wal-0000000000000001.log"} {
		b, err := os.ReadFile(filepath.Join(fixture, "store", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		s := reopen(t, dir)
		if got := dump(s); got != strings.TrimSuffix(string(want), "\n") || s.Seq() != 83 {
			t.Fatalf("round %d: seq %d, tree equal %t", round, s.Seq(), got == strings.TrimSuffix(string(want), "\n"))
		}
		for k, v := range map[string]string{"after-snapshot": "two", "before-snapshot": "", "undo": "inverse"} {
			if got := getMeta(t, s, k); got != v {
				t.Fatalf("round %d: meta %s = %q, want %q", round, k, got, v)
			}
		}
		if err := s.Close(); err != nil { // waits for the rewrite of the snapshot
			t.Fatal(err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, treeDB), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(btx *bolt.Tx) error {
		if sn, err := readSnapshot(btx); err != nil || sn.legacy || sn.seq != 83 {
			t.Errorf("snapshot after the upgrade: legacy %t, seq %d, %v; want checksummed at 83", sn.legacy, sn.seq, err)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Check(dir, testSchema(t)); err != nil || r.Damage != nil || r.Seq != 83 {
		t.Fatalf("check after the upgrade: %v %+v", err, r)
	}
}
