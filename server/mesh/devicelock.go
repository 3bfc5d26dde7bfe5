package mesh

import "io"

// DeviceLocker takes the host-wide lock of a WireGuard device name
// (hostlock.WireGuardDevice as the daemon) before the component hosts or
// configures a device of that name.
type DeviceLocker func(name string) (io.Closer, error)

// HeldDevice is a device name lock taken before the component started,
// handed over to it: it releases the lock with the device.
type HeldDevice struct {
	Name string
	Lock io.Closer
}
