package mesh

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/guildhouse-co/kedge/server/hostlock"
)

// DeviceLockDir holds the device name locks: beside the UAPI sockets of
// userspace WireGuard devices, whose names are host-wide (the sockets
// are not namespaced, and wgctrl finds a device by its socket's name from
// any namespace). A kernel device's name is only per namespace, but the
// daemon cannot know which kind another daemon will host, so a name is
// one lock per host either way. wgctrl only looks at sockets here, never
// at the lock files.
const DeviceLockDir = "/var/run/wireguard"

// deviceLockSuffix ends a device lock file's name ("kedge0.kedge.lock").
const deviceLockSuffix = ".kedge.lock"

// LockDevice takes the host-wide lock of the WireGuard device name, as
// me. The daemon takes it at start for the interface its tree names; the
// component takes the new name's before it hosts or configures a renamed
// device, and releases the old one once that device is gone.
func LockDevice(name string, me hostlock.Holder) (*hostlock.Lock, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("lock mesh device: bad interface name %q", name)
	}
	if err := os.MkdirAll(DeviceLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock mesh device: %w", err)
	}
	return hostlock.File(DeviceLockPath(name), hostlock.Resource{
		Name: "WireGuard device name " + name,
		Hint: "give this node's mesh another interface (/kedge/mesh/config/interface)"}, me)
}

// DeviceLockPath is the lock file of a device name.
func DeviceLockPath(name string) string { return filepath.Join(DeviceLockDir, name+deviceLockSuffix) }

// DeviceLocker takes device name locks for a component (LockDevice as a
// daemon's holder).
type DeviceLocker func(name string) (io.Closer, error)

// HeldDevice is a device name lock taken before the component started,
// handed over to it: it releases the lock with the device.
type HeldDevice struct {
	Name string
	Lock io.Closer
}
