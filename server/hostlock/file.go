package hostlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// File takes an exclusive flock on the lock file at path, creating it,
// and records me in it. The flock belongs to the open file, so it ends
// with the process however it ends; the file a killed holder leaves is
// unlocked and is taken over. Close removes the file, then unlocks.
//
// The file is opened without following a symlink, so a lock file in a
// shared directory (/dev/shm) cannot be turned into a write elsewhere.
func File(path string, res Resource, me Holder) (*Lock, error) {
	// A holder that releases removes the file while it still holds the
	// lock: a contender that opened the old file and locks it after the
	// release finds it no longer at path and starts over.
	for range 16 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open lock file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &HeldError{Resource: res, Holder: fileHolder(f)}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !stillAt(f, path) {
			f.Close()
			continue
		}
		if err := record(f, me); err != nil {
			f.Close()
			return nil, err
		}
		return &Lock{res: res, release: func() error {
			rerr := os.Remove(path)
			if errors.Is(rerr, os.ErrNotExist) {
				rerr = nil // someone removed it for us; the lock is ours until Close
			}
			return errors.Join(rerr, f.Close())
		}}, nil
	}
	return nil, fmt.Errorf("lock %s: the file kept being replaced", path)
}

// stillAt reports whether the open file f is the file at path.
func stillAt(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// record writes the holder into its lock file.
func record(f *os.File, me Holder) error {
	b, err := json.Marshal(me)
	if err != nil {
		return fmt.Errorf("encode lock holder: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	if _, err := f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// readRecord reads the holder a lock file records (zero when none).
func readRecord(f *os.File) Holder {
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	var h Holder
	if json.Unmarshal(b[:n], &h) != nil {
		return Holder{}
	}
	return h
}

// fileHolder names who holds f's flock: the pid from /proc/locks (the
// kernel's word), with the data dir the file records when the record is
// that pid's (it may be a killed holder's for a moment, until the new
// holder rewrites it), else the one Describe finds.
func fileHolder(f *os.File) Holder {
	rec := readRecord(f)
	pid := flockHolder(f)
	switch {
	case pid == 0:
		// Not visible here: trust the record, without a pid.
		return Holder{DataDir: rec.DataDir}
	case rec.PID == pid:
		h := Describe(pid)
		h.DataDir = rec.DataDir
		return h
	}
	return Describe(pid)
}
