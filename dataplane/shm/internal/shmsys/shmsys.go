// Package shmsys is the only place the shm backend touches the kernel: it
// opens, locks, sizes, links and maps segment files. It knows nothing about
// the governance layout; callers get plain files and byte slices.
package shmsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked means another open file description holds the exclusive lock.
var ErrLocked = errors.New("segment locked by another writer")

// Open opens an existing segment file, read-write or read-only.
func Open(path string, write bool) (*os.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err // callers test os.ErrNotExist; os errors already name the path
	}
	return f, nil
}

// CreateTemp creates a new, empty, uniquely named file of size bytes in dir,
// so a segment can be fully initialised before it becomes visible under its
// real name (see Publish).
func CreateTemp(dir string, size int64, perm os.FileMode) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".kedge-governance-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary segment: %w", err)
	}
	if err := f.Chmod(perm); err != nil {
		discard(f)
		return nil, fmt.Errorf("chmod temporary segment: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		discard(f)
		return nil, fmt.Errorf("size temporary segment: %w", err)
	}
	return f, nil
}

// Publish gives the initialised temporary file f its final name. It uses
// link(2), not rename(2), so it fails with os.ErrExist instead of replacing
// a segment another writer published first. The temporary name is removed
// either way.
func Publish(f *os.File, path string) error {
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, unix.EEXIST) {
			return os.ErrExist
		}
		return fmt.Errorf("publish segment %s: %w", path, err)
	}
	return nil
}

// Discard closes and removes a temporary file that was never published.
func Discard(f *os.File) { discard(f) }

func discard(f *os.File) {
	_ = os.Remove(f.Name())
	_ = f.Close()
}

// Lock takes a non-blocking exclusive flock on f. The lock belongs to the open
// file description, so it is released by closing f or by process exit, which
// is what lets a restarted writer adopt the segment of a crashed one.
func Lock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	if err != nil {
		return fmt.Errorf("lock segment: %w", err)
	}
	return nil
}

// Size reports the current size of f in bytes.
func Size(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("stat segment: %w", err)
	}
	return st.Size, nil
}

// Map maps size bytes of f MAP_SHARED. The result is page aligned, so any
// offset that is a multiple of 8 is suitable for 64-bit atomics.
func Map(f *os.File, size int, write bool) ([]byte, error) {
	prot := unix.PROT_READ
	if write {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map segment: %w", err)
	}
	return mem, nil
}

// Unmap releases a mapping made by Map.
func Unmap(mem []byte) error {
	if mem == nil {
		return nil
	}
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("unmap segment: %w", err)
	}
	return nil
}

// Dir returns the directory a segment path lives in, for CreateTemp.
func Dir(path string) string { return filepath.Dir(path) }
