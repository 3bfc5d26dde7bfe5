package fileperm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestModes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode             fs.FileMode
		secretOK, trusts bool
	}{
		{0o600, true, true},
		{0o400, true, true},
		{0o640, false, true},
		{0o604, false, true},
		{0o644, false, true},
		{0o620, false, false},
		{0o602, false, false},
		{0o666, false, false},
	} {
		p := filepath.Join(dir, "f")
		os.Remove(p)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		b, err := ReadSecret(p, "users file")
		if got := err == nil; got != tc.secretOK {
			t.Errorf("ReadSecret mode %04o: %v, want ok=%v", tc.mode, err, tc.secretOK)
		} else if err == nil && string(b) != "x" {
			t.Errorf("ReadSecret read %q", b)
		} else if err != nil && (!errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "users file "+p) ||
			!strings.Contains(err.Error(), "chmod 600 "+p)) {
			t.Errorf("ReadSecret mode %04o: error %q does not name the file and the fix", tc.mode, err)
		}
		_, err = ReadTrusted(p, "policy file")
		if got := err == nil; got != tc.trusts {
			t.Errorf("ReadTrusted mode %04o: %v, want ok=%v", tc.mode, err, tc.trusts)
		} else if err != nil && (!errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "policy file "+p) ||
			!strings.Contains(err.Error(), "chmod go-w "+p)) {
			t.Errorf("ReadTrusted mode %04o: error %q does not name the file and the fix", tc.mode, err)
		}
	}
}

func TestNotRegularAndMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSecret(dir, "TLS key"); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := ReadSecret(filepath.Join(dir, "none"), "TLS key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A symlink is followed: the target's mode counts.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("k"), 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(link, "TLS key"); !errors.Is(err, ErrInsecure) {
		t.Errorf("symlink to a 0644 file: %v", err)
	}
	os.Chmod(target, 0o600)
	if b, err := ReadSecret(link, "TLS key"); err != nil || string(b) != "k" {
		t.Errorf("symlink to a 0600 file: %q, %v", b, err)
	}
}

// fakeInfo is a FileInfo with a chosen owner.
type fakeInfo struct {
	mode fs.FileMode
	uid  uint32
}

func (f fakeInfo) Name() string       { return "f" }
func (f fakeInfo) Size() int64        { return 1 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid} }

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		uid  uint32
		euid int
		ok   bool
	}{
		{0, 0, true},         // root's file, root daemon
		{0, 1000, true},      // root's file, user daemon
		{1000, 1000, true},   // own file
		{1000, 0, false},     // a user's file read by a root daemon: that user could rewrite it
		{1001, 1000, false},  // someone else's
		{65534, 1000, false}, // nobody's
	} {
		err := check(fakeInfo{mode: 0o600, uid: tc.uid}, "/p", "users file", 0o077, "x", "y", tc.euid)
		if (err == nil) != tc.ok {
			t.Errorf("owner %d, daemon %d: %v, want ok=%v", tc.uid, tc.euid, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "owned by uid")) {
			t.Errorf("owner %d: error %q", tc.uid, err)
		}
	}
}
