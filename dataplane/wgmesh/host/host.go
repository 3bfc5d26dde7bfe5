// Package host runs the WireGuard device that a wgmesh.Backend configures:
// a kernel WireGuard link when the kernel has the module, otherwise an
// embedded wireguard-go device on a TUN with the standard UAPI socket under
// /var/run/wireguard, which wgctrl finds like any other device.
//
// The daemon embeds a Host in development, tests and `make run`. In
// production the kedge-wg sidecar (cmd/kedge-wg) runs it instead, so a
// daemon restart does not take the tunnels down: the backend finds the
// sidecar's device by name through wgctrl.
//
// Namespaces: a Host may live in another network namespace than the calling
// process. The TUN is created, and every UDP socket of the device is opened,
// on an OS thread locked into that namespace, whichever goroutine triggers
// it (wireguard-go reopens its sockets when the listen port is set over UAPI
// and when the link goes up, from its own goroutines).
//
// The UAPI socket path is not namespaced: two userspace devices with the same
// name in different namespaces collide, and Start fails with "unix socket in
// use". Give each node on one host a distinct interface name.
package host

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/wgsys"
)

// Mode says which WireGuard implementation hosts the device.
type Mode string

// Modes.
const (
	ModeAuto      Mode = ""          // kernel if available, else userspace
	ModeKernel    Mode = "kernel"    // kernel module; fail if absent
	ModeUserspace Mode = "userspace" // wireguard-go
)

// Config says which device to host.
type Config struct {
	// Name is the interface name (and UAPI socket name); required.
	Name string
	// MTU of the new link; 0 means wireguard-go's default 1420.
	MTU int
	// Netns is the path of the namespace to host the device in; empty is
	// the caller's.
	Netns string
	// Mode picks the implementation.
	Mode Mode
	// Logger receives device logs (wireguard-go verbose logs at debug).
	Logger *slog.Logger
}

// Host owns one WireGuard device until Close.
type Host struct {
	name   string
	mode   Mode
	thread *nsthread.Thread
	links  *wgsys.Links
	dev    *device.Device
	uapi   net.Listener
	done   chan struct{}
	once   sync.Once
}

// Start creates the device. It is not configured: no key, no peers, link
// down; wgmesh.Backend.Set does the rest.
func Start(cfg Config) (*Host, error) {
	if cfg.Name == "" || len(cfg.Name) > 15 {
		return nil, fmt.Errorf("start wireguard host: interface name %q must be 1-15 bytes", cfg.Name)
	}
	if cfg.MTU == 0 {
		cfg.MTU = device.DefaultMTU
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := nsthread.Start(cfg.Netns)
	if err != nil {
		return nil, fmt.Errorf("start wireguard host %s: %w", cfg.Name, err)
	}
	links, err := wgsys.OpenLinks(t)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("start wireguard host %s: %w", cfg.Name, err)
	}
	h := &Host{name: cfg.Name, thread: t, links: links, done: make(chan struct{})}
	if cfg.Mode != ModeUserspace {
		err := links.CreateWireGuard(cfg.Name, cfg.MTU)
		switch {
		case err == nil:
			h.mode = ModeKernel
			log.Info("wireguard host started", "interface", cfg.Name, "mode", h.mode)
			return h, nil
		case !errors.Is(err, wgsys.ErrNotSupported) || cfg.Mode == ModeKernel:
			h.closeHandles()
			return nil, fmt.Errorf("start wireguard host %s: %w", cfg.Name, err)
		}
	}
	if err := h.startUserspace(cfg, log); err != nil {
		h.closeHandles()
		return nil, fmt.Errorf("start wireguard host %s: %w", cfg.Name, err)
	}
	log.Info("wireguard host started", "interface", cfg.Name, "mode", h.mode, "netns", cfg.Netns)
	return h, nil
}

func (h *Host) startUserspace(cfg Config, log *slog.Logger) error {
	var tdev tun.Device
	err := h.thread.Do(func() error {
		var err error
		tdev, err = tun.CreateTUN(cfg.Name, cfg.MTU)
		return err
	})
	if err != nil {
		return fmt.Errorf("create tun: %w", err)
	}
	uapiFile, err := ipc.UAPIOpen(cfg.Name)
	if err != nil {
		tdev.Close()
		return fmt.Errorf("open uapi socket: %w", err)
	}
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...), "interface", cfg.Name) },
		Errorf:   func(format string, args ...any) { log.Error(fmt.Sprintf(format, args...), "interface", cfg.Name) },
	}
	dev := device.NewDevice(&nsTUN{Device: tdev, thread: h.thread}, &nsBind{Bind: conn.NewDefaultBind(), thread: h.thread}, logger)
	uapi, err := ipc.UAPIListen(cfg.Name, uapiFile)
	if err != nil {
		dev.Close()
		uapiFile.Close()
		return fmt.Errorf("listen on uapi socket: %w", err)
	}
	if err := dev.Up(); err != nil {
		uapi.Close()
		dev.Close()
		return fmt.Errorf("bring device up: %w", err)
	}
	h.mode, h.dev, h.uapi = ModeUserspace, dev, uapi
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return // listener closed
			}
			go dev.IpcHandle(c)
		}
	}()
	go func() {
		<-dev.Wait()
		h.once.Do(func() { close(h.done) })
	}()
	return nil
}

// Name is the interface name.
func (h *Host) Name() string { return h.name }

// Mode is the implementation in use.
func (h *Host) Mode() Mode { return h.mode }

// Done is closed when a userspace device stops (Close, or its TUN vanished).
// For a kernel device it closes on Close.
func (h *Host) Done() <-chan struct{} { return h.done }

// Close removes the device: the UAPI socket, the wireguard-go engine and its
// TUN, or the kernel link.
func (h *Host) Close() error {
	var err error
	if h.mode == ModeKernel {
		err = h.links.Delete(h.name)
	} else {
		if h.uapi != nil {
			h.uapi.Close()
		}
		if h.dev != nil {
			h.dev.Close()
		}
	}
	h.once.Do(func() { close(h.done) })
	h.closeHandles()
	if err != nil {
		return fmt.Errorf("close wireguard host %s: %w", h.name, err)
	}
	return nil
}

func (h *Host) closeHandles() {
	h.links.Close()
	h.thread.Close()
}

// nsBind opens the device's UDP sockets inside the host's namespace, so a
// rebind triggered from any goroutine (UAPI listen_port, link up event)
// lands in the right place. Wrapping the bind turns off wireguard-go's
// sticky source-address route listener, which only matters on multihomed
// underlays.
type nsBind struct {
	conn.Bind
	thread *nsthread.Thread
}

func (b *nsBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	var (
		fns    []conn.ReceiveFunc
		actual uint16
	)
	err := b.thread.Do(func() error {
		var err error
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}

// nsTUN reads the MTU inside the host's namespace: wireguard-go asks by
// interface name from its event goroutine, and in the wrong namespace that
// name is absent or, worse, another link.
type nsTUN struct {
	tun.Device
	thread *nsthread.Thread
}

func (t *nsTUN) MTU() (int, error) {
	var mtu int
	err := t.thread.Do(func() error {
		var err error
		mtu, err = t.Device.MTU()
		return err
	})
	return mtu, err
}
