package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/internal/mountinfo"
)

// ErrNoSpace: a write failed because the filesystem holding the store is
// full (or the quota is used up). Nothing was acknowledged. Errors
// matching it are *NoSpaceError, which names the disk.
var ErrNoSpace = errors.New("no space left on the store's disk")

// NoSpaceError is a write that failed for lack of disk space.
//
// A write error on the log is not fail-stop: nothing of the record was
// synced, the next record is written at the same offset over whatever
// part of it reached the file, and any bytes left past that are no
// record (each names its own offset), so once space is freed writes
// simply succeed again. A failed fdatasync is different: the record's
// fate is unknown, so the log stops until a restart (Stopped).
type NoSpaceError struct {
	Dir     string // the store's directory
	Disk    string // its filesystem: device, type, mount point, free space
	Stopped bool   // writes are refused until the daemon restarts
	Err     error
}

func (e *NoSpaceError) Error() string {
	then := "writes succeed again once space is freed"
	if e.Stopped {
		then = "writes are stopped until the daemon restarts"
	}
	return fmt.Sprintf("no space left for store %s on %s (%s): %v", e.Dir, e.Disk, then, e.Err)
}

// Is makes errors.Is(err, ErrNoSpace) true.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

func (e *NoSpaceError) Unwrap() error { return e.Err }

func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// noSpaceLogEvery bounds how often a full disk is logged at ERROR while
// writers keep retrying.
const noSpaceLogEvery = 10 * time.Second

// noSpace turns a write error caused by a full disk into a *NoSpaceError
// and logs it at ERROR (at most every noSpaceLogEvery, with how many
// failures it did not log); any other error is returned as is. Callers
// hold walMu.
func (s *Store) noSpace(err error, what string, stopped bool) error {
	if !isNoSpace(err) {
		return err
	}
	e := &NoSpaceError{Dir: s.dir, Disk: describeDisk(s.dir), Stopped: stopped, Err: err}
	now := s.now()
	if s.full.logged.IsZero() || now.Sub(s.full.logged) >= noSpaceLogEvery || stopped {
		then := "resume once space is freed"
		if stopped {
			then = "stopped until the daemon restarts"
		}
		s.log.Error("store out of disk space: "+what+" failed", "dir", s.dir, "disk", e.Disk,
			"writes", then, "unlogged_failures", s.full.unlogged, "err", err)
		s.full.logged, s.full.unlogged = now, 0
	} else {
		s.full.unlogged++
	}
	s.full.on = true
	return e
}

// wrote notes a successful write, logging the end of a full-disk spell.
func (s *Store) wrote() {
	if s.full.on {
		s.log.Info("store writes again after running out of disk space", "dir", s.dir, "disk", describeDisk(s.dir))
		s.full = diskFull{}
	}
}

// diskFull tracks a spell of writes failing for lack of space.
type diskFull struct {
	on       bool
	logged   time.Time
	unlogged int
}

// describeDisk names the filesystem holding dir: its source device, type
// and mount point (from /proc/self/mountinfo) and its free space.
func describeDisk(dir string) string {
	var b strings.Builder
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	if m, ok := mountOf(abs); ok {
		fmt.Fprintf(&b, "%s (%s, mounted at %s)", m.source, m.fstype, m.point)
	} else {
		b.WriteString("its filesystem")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err == nil {
		fmt.Fprintf(&b, ", %s free of %s", bytesString(st.Bavail*uint64(st.Bsize)), bytesString(st.Blocks*uint64(st.Bsize)))
	}
	return b.String()
}

type mount struct{ point, fstype, source string }

// mountOf finds the mount holding path: the entry of path's device whose
// mount point is the longest prefix of path.
func mountOf(path string) (mount, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return mount{}, false
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	ms, err := mountinfo.Read(mountinfo.Self)
	if err != nil {
		return mount{}, false
	}
	var best mount
	for _, m := range ms {
		if m.Dev != dev || !strings.HasPrefix(path, m.Point) || len(m.Point) < len(best.point) {
			continue
		}
		best = mount{point: m.Point, fstype: m.FSType, source: m.Source}
	}
	return best, best.point != ""
}

func bytesString(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
