package hostlock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The daemon's resources, each with its lock, so that the daemon, the
// mesh component and the demo's cleanup agree on where a lock lives and
// what its messages say.

// DataDir locks a daemon's data dir.
func DataDir(dir string, me Holder) (*Lock, error) {
	return File(filepath.Join(dir, DataDirLock),
		Resource{Name: "data dir " + dir, Hint: "each daemon needs its own --data-dir"}, me)
}

// UnixSocket locks a unix socket path (its lock file is beside it).
func UnixSocket(path string, me Holder) (*Lock, error) {
	return File(path+".lock", Resource{Name: "unix socket " + path, Hint: "give this daemon another --socket"}, me)
}

// Segment locks a VPP governance segment path (its lock file is beside
// it: the segment's own flock belongs to its writer, which opens it
// later).
func Segment(path string, me Holder) (*Lock, error) {
	return File(path+".lock", Resource{Name: "VPP governance segment " + path, Hint: "give this daemon another --shm-path (or off)"}, me)
}

// PinDir locks a BPF pin dir, which must exist.
func PinDir(dir string) (*Lock, error) {
	return Dir(dir, Resource{Name: "BPF pin dir " + dir, Hint: "give this daemon another --bpf-pin-dir (or off)"})
}

// RouteProtocol locks the route protocol proto in the network namespace
// netns (a name under /run/netns, a path, or "" for this process's own).
func RouteProtocol(netns string, proto int, me Holder) (*Lock, error) {
	where, path := "this daemon's network namespace", ""
	switch {
	case strings.ContainsRune(netns, '/'):
		where, path = "network namespace "+netns, netns
	case netns != "":
		where, path = "network namespace "+netns, filepath.Join("/run/netns", netns)
	}
	return Abstract(path, fmt.Sprintf("route-protocol/%d", proto),
		Resource{Name: fmt.Sprintf("route protocol %d in %s", proto, where), Hint: "give this daemon its own --netns"}, me)
}

// WireGuardDir holds the WireGuard device name locks: beside the UAPI
// sockets of userspace WireGuard devices, whose names are host-wide (the
// sockets are not namespaced, and wgctrl finds a device by its socket's
// name from any namespace). A kernel device's name is only per namespace,
// but a daemon cannot know which kind another will host, so a name is one
// lock per host either way. wgctrl only looks at sockets there.
const WireGuardDir = "/var/run/wireguard"

// WireGuardLockSuffix ends a device lock file's name ("kedge0.kedge.lock").
const WireGuardLockSuffix = ".kedge.lock"

// WireGuardLockPath is the lock file of a device name.
func WireGuardLockPath(name string) string {
	return filepath.Join(WireGuardDir, name+WireGuardLockSuffix)
}

// WireGuardDevice locks a WireGuard device name.
func WireGuardDevice(name string, me Holder) (*Lock, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("lock mesh device: bad interface name %q", name)
	}
	if err := os.MkdirAll(WireGuardDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock mesh device: %w", err)
	}
	return File(WireGuardLockPath(name), Resource{Name: "WireGuard device name " + name,
		Hint: "give this node's mesh another interface (/kedge/mesh/config/interface)"}, me)
}
