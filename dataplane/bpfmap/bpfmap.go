// Package bpfmap is the posture BPF backend's contract: the plain Config
// (the level in the pinned posture_level map that other programs, the
// shell's eBPF programs and the governance daemon, share; the level-1
// egress allowlist and the cgroup it is enforced on), the errors, the
// EgressStatus, and the Backend interface. It imports no eBPF library, so
// its callers link none: the implementation over cilium/ebpf is package
// bpfmap/pinned, a recording fake is bpfmap/bpfmaptest.
//
// Everything lives in pins under one directory (default /sys/fs/bpf/kedge),
// so enforcement survives a daemon restart and the next open adopts it
// instead of duplicating it.
package bpfmap

import (
	"context"
	"errors"
	"net/netip"
)

// Defaults.
const (
	DefaultBPFFS  = "/sys/fs/bpf"
	DefaultPinDir = "/sys/fs/bpf/kedge"
)

// Errors callers may match with errors.Is.
var (
	// ErrSpecMismatch: a pin exists with another type, key or value size,
	// max entries or flags. It is left untouched.
	ErrSpecMismatch = errors.New("pinned map has a different spec")
	// ErrNotCgroup2: Config.CgroupPath is not a cgroup v2 directory.
	ErrNotCgroup2   = errors.New("not a cgroup v2 directory")
	ErrInvalidLevel = errors.New("posture level out of range 1..5")
	// ErrAllowlistFull: more prefixes of one family than the map holds
	// (1024 each); nothing is written.
	ErrAllowlistFull = errors.New("allowlist exceeds map capacity")
	ErrClosed        = errors.New("backend closed")
)

// Config is the desired state.
type Config struct {
	// Level is the posture level, 1 (lockdown) .. 5 (normal).
	Level uint8
	// Allowlist is where processes in the cgroup may still send at level 1,
	// besides loopback. IPv4 and IPv6; host bits are ignored; duplicates and
	// order do not matter.
	Allowlist []netip.Prefix
	// CgroupPath is the cgroup v2 directory the egress program is attached
	// to (for example /sys/fs/cgroup/unified/kubepods). Empty means no
	// enforcement program: any existing one is detached.
	CgroupPath string
}

// EgressStatus describes the pinned enforcement link, for /state.
type EgressStatus struct {
	CgroupID  uint64 // kernel id of the cgroup it is attached to
	LinkID    uint32
	ProgramID uint32
}

// Backend keeps the posture maps and the egress program matching a
// Config. Its methods are safe for concurrent use.
type Backend interface {
	// Set makes the maps and the egress link match cfg, writing only what
	// differs (another program's write of the same level stays).
	Set(ctx context.Context, cfg Config) error
	// Level reads the level in the map now, whoever wrote it (0: never
	// written).
	Level() (uint8, error)
	// Close releases the handles; the pins, and so enforcement, stay.
	Close() error
}
