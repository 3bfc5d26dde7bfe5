package ledger

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

type keys struct {
	s note.Signer
	v note.Verifier
}

func newKeys(t testing.TB, name string) keys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return keys{s, v}
}

func open(t testing.TB, dir string, k keys) *Ledger {
	t.Helper()
	l, err := Open(dir, Options{Verifier: k.v, Signer: k.s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func entry(i int) []byte {
	return fmt.Appendf(nil, "entry %d: %x", i, sha256.Sum256(fmt.Append(nil, i)))
}

// fill appends entries [from, to) in groups of per and flushes each.
func fill(t testing.TB, l *Ledger, from, to, per int) {
	t.Helper()
	for i := from; i < to; i++ {
		n, err := l.Append(entry(i))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(i) {
			t.Fatalf("entry %d got index %d", i, n)
		}
		if (i+1-from)%per == 0 || i == to-1 {
			if _, err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func fileHash(t testing.TB, dir string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// patch overwrites bytes of the log file at off.
func patch(t testing.TB, dir string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, dir string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

var syscallFdatasync = fdatasync
