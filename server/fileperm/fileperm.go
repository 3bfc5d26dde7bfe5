// Package fileperm reads the files whose contents decide who may do what
// on the node, refusing any that another user could have read or
// changed: a secret (users file of password hashes, TLS private key) must
// not be readable or writable by group or others, and a trust file
// (policy, client CA bundle) must not be writable by them. Either must be
// owned by the daemon's user or root, a regular file (symlinks are
// followed, as Kubernetes projects secrets through them), and is checked
// and read through one open file, so it cannot be swapped in between.
//
// The errors wrap ErrInsecure, name the file and say the fix. Repairing
// the mode silently is not an option: whoever could read or write the
// file may already have.
package fileperm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrInsecure marks a file refused for its mode, owner or type.
var ErrInsecure = errors.New("insecure file")

// maxSize bounds what is read: these files are small, and a huge one is
// a mistake (or an attack) better refused than loaded.
const maxSize = 16 << 20

// ReadSecret returns the contents of a secret file: what names it in
// errors ("users file", "TLS key").
func ReadSecret(path, what string) ([]byte, error) {
	return read(path, what, 0o077, "group or others can read or write it", "chmod 600 "+path)
}

// ReadTrusted returns the contents of a file the daemon trusts but that
// holds no secret (a policy, a CA bundle): others may read it, but not
// write it.
func ReadTrusted(path, what string) ([]byte, error) {
	return read(path, what, 0o022, "group or others can write it", "chmod go-w "+path)
}

func read(path, what string, forbid fs.FileMode, danger, fix string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if err := check(fi, path, what, forbid, danger, fix, os.Geteuid()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("read %s %s: larger than %d bytes", what, path, maxSize)
	}
	return b, nil
}

// check decides on an opened file's metadata; euid is the daemon's user.
func check(fi fs.FileInfo, path, what string, forbid fs.FileMode, danger, fix string, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %s is not a regular file", ErrInsecure, what, path)
	}
	if perm := fi.Mode().Perm(); perm&forbid != 0 {
		return fmt.Errorf("%w: %s %s has mode %04o: %s (fix with %s)", ErrInsecure, what, path, perm, danger, fix)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("%w: %s %s is owned by uid %d, who could change it (fix with chown %d %s, or root)",
			ErrInsecure, what, path, st.Uid, euid, path)
	}
	return nil
}
