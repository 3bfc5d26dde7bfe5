package hostlock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Dir takes an exclusive flock on the directory at path, which must
// exist. It is for a resource that is itself a directory on a filesystem
// without regular files, such as a BPF pin dir on bpffs; the holder is
// found through /proc/locks and Describe. Close unlocks and leaves the
// directory alone.
func Dir(path string, res Resource) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open locked directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			h := Holder{}
			if pid := flockHolder(f); pid > 0 {
				h = Describe(pid)
			}
			return nil, &HeldError{Resource: res, Holder: h}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{res: res, release: f.Close}, nil
}
