// Package bpfsys is the only place the bpfmap backend touches the kernel:
// bpffs and cgroup2 mounts, the pinned posture maps, the egress program and
// its cgroup link, all through cilium/ebpf and x/sys/unix. It holds no
// policy: callers decide what to write and in which order.
package bpfsys

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// EnsureBPFFS makes sure a bpf filesystem is mounted at mountpoint, mounting
// one if not. Mounting needs CAP_SYS_ADMIN; an existing mount needs nothing.
func EnsureBPFFS(mountpoint string) error {
	if ok, err := isFS(mountpoint, unix.BPF_FS_MAGIC); err == nil && ok {
		return nil
	}
	if err := os.MkdirAll(mountpoint, 0o700); err != nil {
		return fmt.Errorf("create bpffs mountpoint: %w", err)
	}
	if err := unix.Mount("bpf", mountpoint, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", mountpoint, err)
	}
	return nil
}

// EnsurePinDir creates dir (and parents) and checks it lives on bpffs.
func EnsurePinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	ok, err := isFS(dir, unix.BPF_FS_MAGIC)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("check pin directory %s: %w", dir, ErrNotBPFFS)
	}
	return nil
}

// ErrNotBPFFS means a pin directory is not on a bpf filesystem.
var ErrNotBPFFS = errors.New("not on a bpf filesystem")

// ErrNotCgroup2 means a path is not a cgroup v2 directory.
var ErrNotCgroup2 = bpfmap.ErrNotCgroup2

func isFS(path string, magic int64) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Type) == magic, nil
}

// Cgroup2Mount returns the first cgroup2 mount point listed in /proc/mounts
// (on hybrid hosts that is /sys/fs/cgroup/unified, on unified ones
// /sys/fs/cgroup).
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return mountinfo.Unescape(fields[1]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	return "", fmt.Errorf("find cgroup2 mount: %w", os.ErrNotExist)
}

// CgroupID returns the kernel's id of the cgroup v2 directory at path: the
// id BPF link info reports for cgroup links.
func CgroupID(path string) (uint64, error) {
	ok, err := isFS(path, unix.CGROUP2_SUPER_MAGIC)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("check cgroup %s: %w", path, ErrNotCgroup2)
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		return 0, fmt.Errorf("get cgroup id of %s: %w", path, err)
	}
	b := h.Bytes()
	if len(b) < 8 {
		return 0, fmt.Errorf("get cgroup id of %s: handle has %d bytes", path, len(b))
	}
	return binary.NativeEndian.Uint64(b), nil
}
