package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes on a new directory and returns
// it; the test skips when it cannot (not root, or no mount permission).
func smallDisk(t testing.TB, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs and fill it")
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("kedge-full-%d-%d", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		os.Remove(dir)
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// fill writes a file until the filesystem is full and returns its path.
func fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return path
		}
	}
}

// TestDiskFull: on a full disk a commit fails with ErrNoSpace naming the
// directory and its filesystem, logged at ERROR, and changes nothing;
// once space is freed commits succeed again without a restart, and a
// restart finds every acknowledged commit. The segment that could not
// be preallocated (64 MiB on an 8 MiB disk) is a WARN at open, and the
// log is sparse, so appends need free blocks: the failing writes leave
// parts of records behind, which must never be taken for damage.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t, 8<<20)
	dir := filepath.Join(disk, "store")
	logs := &logCapture{}
	s, err := Open(dir, testSchema(t), Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if len(logs.find(slog.LevelWarn, "sparse", "wal-")) != 1 || !s.wl.Sparse() {
		t.Fatalf("no warning that the log segment is sparse: %q", logs.find(slog.LevelWarn))
	}
	acked := 0
	commit := func(routes int) error {
		i := acked
		ops := []Op{upd(t, route(0)+"/config/tags", str(itoa(i)))}
		for k := 1; k < routes; k++ {
			ops = append(ops, upd(t, route(1000+k)+"/config/tags", str(itoa(i))))
		}
		_, err := s.Commit(context.Background(), ops)
		if err == nil {
			acked++
		}
		return err
	}
	for range 20 {
		if err := commit(1); err != nil {
			t.Fatal(err)
		}
	}
	filler := fill(t, disk)
	// The log's last page is allocated: commits fill it, then fail.
	var err1 error
	for i := 0; i < 100 && err1 == nil; i++ {
		err1 = commit(1)
	}
	before, seq := dump(s), s.Seq()
	// Small and large commits (the large ones write part of their record
	// before the disk refuses), and a PutMeta too big for what is left of
	// the last allocated page (a smaller record may still fit there).
	for _, routes := range []int{1, 400, 1, 2000, 1} {
		err := commit(routes)
		var full *NoSpaceError
		if !errors.Is(err, ErrNoSpace) || !errors.As(err, &full) || full.Stopped {
			t.Fatalf("commit of %d routes on a full disk: %v, want a NoSpaceError", routes, err)
		}
		for _, w := range []string{dir, "tmpfs", "mounted at " + disk, "free of", "once space is freed"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
	}
	if err := s.PutMeta("k", make([]byte, 64<<10)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put meta on a full disk: %v", err)
	}
	if dump(s) != before || s.Seq() != seq {
		t.Fatal("a commit that failed for lack of space changed the tree")
	}
	if got := logs.find(slog.LevelError, "out of disk space", dir, "tmpfs"); len(got) == 0 {
		t.Fatalf("no ERROR about the full disk: %q", logs.find(slog.LevelError))
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, routes := range []int{1, 2000, 1} {
		if err := commit(routes); err != nil {
			t.Fatalf("commit after space was freed: %v", err)
		}
	}
	if len(logs.find(slog.LevelInfo, "writes again")) != 1 {
		t.Errorf("no INFO that writes work again: %q", logs.find(slog.LevelInfo))
	}
	want := dump(s)
	s.Close()
	s, err = Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatalf("reopen after a full disk: %v", err)
	}
	if dump(s) != want || readTags(t, s, route(0)) != acked-1 {
		t.Fatalf("after restart: route 0 tags %d, want the last acknowledged %d; tree equal %t", readTags(t, s, route(0)), acked-1, dump(s) == want)
	}
}

// TestDiskFullAtRollover: with a preallocated segment, commits go on
// while the disk is full until the segment is used up; the next segment
// cannot be made, commits fail with ErrNoSpace, and after space is freed
// the log rolls over and every acknowledged commit survives a restart.
func TestDiskFullAtRollover(t *testing.T) {
	disk := smallDisk(t, 8<<20)
	dir := filepath.Join(disk, "store")
	// Segments of 1.1 MiB, preallocated in full on this disk; compaction
	// (which fails too while the disk is full) after 900 KiB of log.
	logs := &logCapture{}
	s, err := Open(dir, testSchema(t), Options{CompactBytes: 900 << 10, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.wl.Sparse() {
		t.Fatal("the first segment could not be preallocated on an empty 8 MiB disk")
	}
	filler := fill(t, disk)
	acked := 0
	var failed error
	for i := 0; i < 10000 && failed == nil; i++ {
		ops := []Op{upd(t, route(0)+"/config/tags", str(itoa(i)))}
		for k := 1; k < 100; k++ {
			ops = append(ops, upd(t, route(1000+k)+"/config/tags", str(itoa(i))))
		}
		if _, failed = s.Commit(context.Background(), ops); failed == nil {
			acked++
		}
	}
	if !errors.Is(failed, ErrNoSpace) || acked < 100 {
		t.Fatalf("after %d commits into the preallocated segment: %v, want ErrNoSpace at the rollover", acked, failed)
	}
	t.Logf("%d commits went into the preallocated segment on the full disk", acked)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, upd(t, route(0)+"/config/tags", str(itoa(acked))))
	acked++
	// Failed attempts to make the next segment warn about nothing: the
	// ERROR about the full disk says it (a kept sparse segment would).
	if w := logs.find(slog.LevelWarn, "sparse"); len(w) > 1 {
		t.Errorf("%d warnings about sparse segments for one rollover: %q", len(w), w)
	}
	if len(logs.find(slog.LevelError, "out of disk space")) == 0 {
		t.Errorf("no ERROR about the full disk: %q", logs.find(slog.LevelError))
	}
	want := dump(s)
	s.Close()
	s, err = Open(dir, testSchema(t), Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if dump(s) != want || readTags(t, s, route(0)) != acked-1 {
		t.Fatalf("after restart route 0 tags %d, want %d", readTags(t, s, route(0)), acked-1)
	}
}
