package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestAppendFlushReopenAndProve(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t, "kedge-notary-n1")
	l := open(t, dir, k)
	fill(t, l, 0, 100, 7)
	cp := l.Checkpoint()
	if cp.Size != 100 || l.Size() != 100 {
		t.Fatalf("size %d, checkpoint %d; want 100", l.Size(), cp.Size)
	}
	if _, err := ParseCheckpoint(cp.Note, k.v); err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	l.Close()
	l = open(t, dir, k)
	if l.Size() != 100 || l.Checkpoint().Hash != cp.Hash {
		t.Fatalf("after reopen: size %d hash %s, want 100 %s", l.Size(), l.Checkpoint().Hash, cp.Hash)
	}
	for _, i := range []int64{0, 1, 6, 7, 50, 99} {
		b, err := l.Entry(i)
		if err != nil || !bytes.Equal(b, entry(int(i))) {
			t.Fatalf("entry %d: %q %v", i, b, err)
		}
		p, err := l.ProveRecord(i, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, 100, cp.Hash, i, tlog.RecordHash(b)); err != nil {
			t.Errorf("inclusion proof of %d: %v", i, err)
		}
		if err := tlog.CheckRecord(p, 100, cp.Hash, i, tlog.RecordHash([]byte("other"))); err == nil {
			t.Errorf("inclusion proof of %d accepts other data", i)
		}
	}
	if _, ok, err := l.CheckpointAt(50); ok || err != nil {
		t.Fatalf("a checkpoint at 50, where no group ended: %v %v", ok, err)
	}
	old, ok, err := l.CheckpointAt(49)
	if err != nil || !ok {
		t.Fatalf("checkpoint at 49: %v %v", ok, err)
	}
	p, err := l.ProveTree(100, old.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, 100, cp.Hash, old.Size, old.Hash); err != nil {
		t.Errorf("consistency proof: %v", err)
	}
	// Appending after a reopen continues the same tree.
	fill(t, l, 100, 110, 3)
	if _, err := Verify(dir, k.v, cp.Note); err != nil {
		t.Errorf("verify against the size-100 checkpoint: %v", err)
	}
}

func TestHashesFileIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t, "kedge-notary-n1")
	l := open(t, dir, k)
	fill(t, l, 0, 40, 5)
	cp := l.Checkpoint()
	l.Close()
	for _, damage := range []func(){
		func() { os.Remove(filepath.Join(dir, HashesFile)) },
		func() { os.Truncate(filepath.Join(dir, HashesFile), 100) },
		func() {
			f, _ := os.OpenFile(filepath.Join(dir, HashesFile), os.O_RDWR, 0)
			f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 32*10)
			f.Close()
		},
	} {
		damage()
		l = open(t, dir, k)
		p, err := l.ProveRecord(13, 40)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, 40, cp.Hash, 13, tlog.RecordHash(entry(13))); err != nil {
			t.Errorf("after damaging the hashes file: %v", err)
		}
		l.Close()
	}
}

// groupBounds returns where the last group starts and ends.
func lastGroup(t *testing.T, l *Ledger) (start, end int64) {
	t.Helper()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.cps) < 2 {
		t.Fatal("need two groups")
	}
	prev, last := l.cps[len(l.cps)-2], l.cps[len(l.cps)-1]
	return prev.off + prev.n, last.off + last.n
}

// A crash tears the last group: some of its sectors never reach the disk
// and read as zeros. Open drops the group (it was never acknowledged),
// zeroes it and continues after the previous checkpoint.
func TestTornFinalGroupIsDropped(t *testing.T) {
	k := newKeys(t, "kedge-notary-n1")
	for _, cut := range []struct {
		name     string
		from, to func(start, end int64) int64
	}{
		{"checkpoint missing", func(s, e int64) int64 { return e - 40 }, func(s, e int64) int64 { return e }},
		{"last entry and checkpoint", func(s, e int64) int64 { return e - 300 }, func(s, e int64) int64 { return e }},
		{"everything after the group frame", func(s, e int64) int64 { return s + 17 }, func(s, e int64) int64 { return e }},
		{"group frame torn", func(s, e int64) int64 { return s + 12 }, func(s, e int64) int64 { return e }},
		{"nothing written", func(s, e int64) int64 { return s }, func(s, e int64) int64 { return e }},
	} {
		t.Run(cut.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, k)
			fill(t, l, 0, 20, 10)
			want := l.Checkpoint()
			fill(t, l, 20, 30, 10)
			s, e := lastGroup(t, l)
			l.Close()
			patch(t, dir, cut.from(s, e), make([]byte, cut.to(s, e)-cut.from(s, e)))
			rep, err := Verify(dir, k.v, nil)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if rep.Entries != 20 {
				t.Errorf("verify: %d entries, want 20", rep.Entries)
			}
			l = open(t, dir, k)
			if l.Size() != 20 || l.Checkpoint().Hash != want.Hash {
				t.Fatalf("after the torn write: size %d, want 20", l.Size())
			}
			fill(t, l, 20, 25, 5)
			l.Close()
			l = open(t, dir, k)
			if l.Size() != 25 {
				t.Fatalf("after writing over the torn group: size %d, want 25", l.Size())
			}
		})
	}
}

func TestCorruptionIsRefusedAndNothingChanges(t *testing.T) {
	k := newKeys(t, "kedge-notary-n1")
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string, l *Ledger)
		want   error
	}{
		{"flipped byte in an early entry", func(t *testing.T, dir string, l *Ledger) {
			off := l.offsets[3] + 2
			patch(t, dir, off, []byte{readAt(t, dir, off, 1)[0] ^ 0x10})
		}, ErrCorrupt},
		{"flipped byte in the last group's entry", func(t *testing.T, dir string, l *Ledger) {
			off := l.offsets[27] + 5
			patch(t, dir, off, []byte{readAt(t, dir, off, 1)[0] ^ 1})
		}, ErrCorrupt},
		{"last group's middle zeroed, its checkpoint intact", func(t *testing.T, dir string, l *Ledger) {
			s, _ := lastGroup(t, l)
			patch(t, dir, s+40, make([]byte, 20))
		}, ErrCorrupt},
		{"truncated inside the last group", func(t *testing.T, dir string, l *Ledger) {
			_, e := lastGroup(t, l)
			os.Truncate(filepath.Join(dir, LogFile), e-30)
		}, ErrCorrupt},
		{"truncated after the last checkpoint", func(t *testing.T, dir string, l *Ledger) {
			_, e := lastGroup(t, l)
			os.Truncate(filepath.Join(dir, LogFile), e)
		}, ErrCorrupt},
		{"garbage after the end", func(t *testing.T, dir string, l *Ledger) {
			_, e := lastGroup(t, l)
			patch(t, dir, e+4096, []byte("junk"))
		}, ErrCorrupt},
		{"entry rewritten with a matching CRC", func(t *testing.T, dir string, l *Ledger) {
			off := l.offsets[4]
			p := bytes.Clone(entry(4))
			p[0] = 'E'
			patch(t, dir, off, p)
			patch(t, dir, off-5, binary.LittleEndian.AppendUint32(nil, frameCRC(frameEntry, p)))
		}, ErrTampered},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, k)
			fill(t, l, 0, 30, 10)
			c.damage(t, dir, l)
			l.Close()
			before := fileHash(t, dir)
			_, err := Open(dir, Options{Verifier: k.v, Signer: k.s})
			if !errors.Is(err, c.want) {
				t.Fatalf("open: %v, want %v", err, c.want)
			}
			var ce *CorruptError
			if c.want == ErrCorrupt && (!errors.As(err, &ce) || ce.File == "" || ce.Offset == 0) {
				t.Errorf("open: %v does not name the file and offset", err)
			}
			if fileHash(t, dir) != before {
				t.Error("open changed a damaged log")
			}
			if _, err := Verify(dir, k.v, nil); !errors.Is(err, c.want) {
				t.Errorf("verify: %v, want %v", err, c.want)
			}
			t.Logf("reported: %v", err)
		})
	}
}

// An older copy of the log restored over a newer one is a valid log, only
// shorter: the size it is known to have reached (MinSize) and a later
// checkpoint (verify) catch it.
func TestRollbackAndFork(t *testing.T) {
	k := newKeys(t, "kedge-notary-n1")
	dir := t.TempDir()
	l := open(t, dir, k)
	fill(t, l, 0, 10, 5)
	l.Close()
	old := t.TempDir()
	copyDir(t, dir, old)
	l = open(t, dir, k)
	fill(t, l, 10, 20, 5)
	newer := l.Checkpoint()
	l.Close()
	if _, err := Open(old, Options{Verifier: k.v, Signer: k.s, MinSize: newer.Size}); !errors.Is(err, ErrRolledBack) {
		t.Errorf("open an older copy with MinSize %d: %v, want ErrRolledBack", newer.Size, err)
	}
	if _, err := Verify(old, k.v, newer.Note); !errors.Is(err, ErrRolledBack) {
		t.Errorf("verify an older copy against the newer checkpoint: %v, want ErrRolledBack", err)
	}
	// A fork: the older copy grows with other entries under the same key.
	l = open(t, old, k)
	for i := 10; i < 20; i++ {
		if _, err := l.Append([]byte("forged " + string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify(old, k.v, newer.Note); !errors.Is(err, ErrFork) {
		t.Errorf("verify a forked log: %v, want ErrFork", err)
	}
	// A checkpoint under another key is refused.
	other := newKeys(t, "kedge-notary-n1")
	lo := open(t, t.TempDir(), other)
	fill(t, lo, 0, 3, 3)
	if _, err := Verify(dir, k.v, lo.Checkpoint().Note); !errors.Is(err, ErrTampered) {
		t.Errorf("verify against a checkpoint signed by another key: %v, want ErrTampered", err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	for _, name := range []string{LogFile, HashesFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// The receiver's side: entries arrive, then the node's checkpoint; the
// ledger stores it only when it names exactly the received tree.
func TestFlushNote(t *testing.T) {
	node := newKeys(t, "kedge-notary-n1")
	src := open(t, t.TempDir(), node)
	fill(t, src, 0, 12, 4)
	recv, err := Open(t.TempDir(), Options{Verifier: node.v})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	for i := 0; i < 8; i++ {
		b, _ := src.Entry(int64(i))
		if _, err := recv.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	cp12 := src.Checkpoint()
	if _, err := recv.FlushNote(cp12.Note); !errors.Is(err, ErrFork) {
		t.Errorf("checkpoint of 12 over 8 entries: %v, want ErrFork", err)
	}
	cp8, _, _ := src.CheckpointAt(8)
	if _, err := recv.FlushNote(cp8.Note); err != nil {
		t.Fatalf("checkpoint of 8: %v", err)
	}
	if _, err := recv.Append([]byte("not what the node logged")); err != nil {
		t.Fatal(err)
	}
	for i := 9; i < 12; i++ {
		b, _ := src.Entry(int64(i))
		recv.Append(b)
	}
	if _, err := recv.FlushNote(cp12.Note); !errors.Is(err, ErrTampered) {
		t.Errorf("checkpoint over a changed entry: %v, want ErrTampered", err)
	}
	recv.Discard()
	if recv.Size() != 8 {
		t.Fatalf("receiver size %d, want 8", recv.Size())
	}
}

func TestFailedSyncStopsWrites(t *testing.T) {
	k := newKeys(t, "kedge-notary-n1")
	dir := t.TempDir()
	l := open(t, dir, k)
	fill(t, l, 0, 5, 5)
	fdatasync = func(int) error { return syscall.EIO }
	defer func() { fdatasync = syscallFdatasync }()
	l.Append(entry(5))
	if _, err := l.Flush(); !errors.Is(err, ErrFailed) {
		t.Fatalf("flush with a failing sync: %v", err)
	}
	fdatasync = syscallFdatasync
	if _, err := l.Append(entry(6)); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed sync: %v, want ErrFailed", err)
	}
	l.Close()
	l = open(t, dir, k)
	if n := l.Size(); n != 5 && n != 6 {
		t.Fatalf("after reopen: size %d, want 5 or 6", n)
	}
}

func TestNextCheckpoint(t *testing.T) {
	k := newKeys(t, "kedge-notary-n1")
	l := open(t, t.TempDir(), k)
	fill(t, l, 0, 12, 3) // checkpoints at 3, 6, 9, 12
	per := l.EntryBytes(0, 1)
	for _, c := range []struct{ from, budget, want int64 }{
		{0, 0, 3}, {0, 3 * per, 3}, {0, 7 * per, 6}, {0, 100 * per, 12},
		{4, 2 * per, 6}, {12, 100, 0}, {11, 0, 12},
	} {
		if got := l.NextCheckpoint(c.from, c.budget); got != c.want {
			t.Errorf("NextCheckpoint(%d, %d) = %d, want %d", c.from, c.budget, got, c.want)
		}
	}
}
