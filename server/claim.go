package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/hostlock"
	"github.com/guildhouse-co/kedge/server/listen"
	"github.com/guildhouse-co/kedge/server/probe"
)

// claims are the host-wide resources the daemon holds while it runs. It
// takes them all, and binds its listeners, before any dataplane backend
// opens: a second daemon pointed at any of them (another data dir, the
// same port, socket, segment, pin dir, namespace or mesh device) fails
// naming the holder and has changed nothing, instead of adopting the
// first one's routes and writing its BPF map before a late bind fails.
// Every lock dies with the process (package hostlock), so kill -9 never
// blocks a restart.
type claims struct {
	locks []*hostlock.Lock
	tcp   net.Listener
	unix  net.Listener
	// The dataplane resources held. A backend whose resource could not be
	// claimed for another reason than a holder (its namespace is missing,
	// /dev/shm refuses the lock file) is logged and left out, as is one
	// that cannot open.
	shm, bpf, route bool
	// device is the mesh device name lock, handed to the mesh component.
	device     *hostlock.Lock
	deviceName string
}

// claimDataDir takes the data dir's lock: its record (pid, data dir) is
// also how a contender names the holder of the other locks.
func (d *Daemon) claimDataDir() error {
	d.claims = &claims{}
	l, err := hostlock.DataDir(d.cfg.DataDir, d.self())
	if err != nil {
		return fmt.Errorf("claim host resources: %w", err)
	}
	d.claims.locks = append(d.claims.locks, l)
	return nil
}

func (d *Daemon) self() hostlock.Holder { return hostlock.Self(d.cfg.DataDir) }

// claim takes every other host-wide resource this configuration uses,
// given what the probe allows, and binds the listeners. It reports every
// resource another process holds at once, and then holds nothing it took
// (closeAll releases it) and has created nothing that stays: lock files
// are removed on release, the pin dir is only created (and bpffs mounted)
// when nothing else is held.
func (d *Daemon) claim(probed probe.Report, t treeReader) error {
	cfg, c, me := d.cfg, d.claims, d.self()
	var held hostlock.Conflicts
	// fail records err: a held lock joins the conflicts, anything else
	// ends the claim at once.
	fail := func(err error) error {
		if errors.Is(err, hostlock.ErrHeld) {
			held = append(held, err)
			return nil
		}
		return err
	}
	take := func(l *hostlock.Lock, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		c.locks = append(c.locks, l)
		return true, nil
	}

	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			held = append(held, &hostlock.HeldError{
				Resource: hostlock.Resource{Name: "TCP address " + cfg.Listen, Hint: "give this daemon another --listen"},
				Holder:   hostlock.TCPHolder(cfg.Listen)})
		case err != nil:
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		default:
			c.tcp = ln
		}
	}
	if !cfg.SocketOff() {
		// The lock file goes beside the socket.
		if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
			return fmt.Errorf("create socket dir: %w", err)
		}
		ok, err := take(hostlock.UnixSocket(cfg.Socket, me))
		if err := fail(err); err != nil {
			return fmt.Errorf("claim unix socket: %w", err)
		}
		if ok {
			gid, err := socketGID(cfg.SocketGroup)
			if err != nil {
				return err
			}
			if c.unix, err = listen.Unix(cfg.Socket, listen.UnixOptions{Mode: 0o660, GID: gid}); err != nil {
				return err
			}
		}
	}

	on := cfg.Dataplane == "auto"
	if on && cfg.ShmPath != "off" && probed.Shm.Available {
		ok, err := take(hostlock.Segment(cfg.ShmPath, me))
		if err = fail(err); err != nil {
			d.log.Warn("VPP governance segment left out: cannot lock it", "path", cfg.ShmPath, "err", err)
		}
		c.shm = ok
	}
	if on && probed.Route.Available {
		ok, err := take(hostlock.RouteProtocol(cfg.NetNS, int(route.DefaultProtocol), me))
		if err = fail(err); err != nil {
			d.log.Warn("route backend left out: cannot lock its route protocol", "netns", cfg.NetNS, "err", err)
		}
		c.route = ok
	}
	if on && probed.WGMesh.Available {
		if name, configured := meshDevice(t); configured {
			l, err := hostlock.WireGuardDevice(name, me)
			if err = fail(err); err != nil {
				d.log.Warn("mesh device name not locked; the mesh component retries", "interface", name, "err", err)
			}
			c.device, c.deviceName = l, name
		}
	}
	if on && cfg.BPFPinDir != "off" && probed.BPFMap.Available {
		ok, err := d.claimPinDir(len(held) > 0)
		if err = fail(err); err != nil {
			d.log.Warn("posture_level BPF map left out: cannot lock its pin dir", "pin_dir", cfg.BPFPinDir, "err", err)
		}
		c.bpf = ok
	}
	if len(held) > 0 {
		return fmt.Errorf("claim host resources: %w", held)
	}
	return nil
}

// claimPinDir locks the BPF pin dir. The lock is on the directory itself
// (bpffs has no regular files), so it must exist: it is created, with
// bpffs mounted if need be, only when nothing else is held (probe); a
// missing directory is one nobody holds.
func (d *Daemon) claimPinDir(probe bool) (bool, error) {
	dir := d.cfg.BPFPinDir
	if _, err := os.Stat(dir); err != nil {
		if probe {
			return false, nil
		}
		if err := pinned.Prepare(pinned.WithPinDir(dir)); err != nil {
			return false, err
		}
	}
	l, err := hostlock.PinDir(dir)
	if err != nil {
		return false, err
	}
	d.claims.locks = append(d.claims.locks, l)
	return true, nil
}

// treeReader is how claim reads the tree (*store.Store).
type treeReader interface {
	Read(fn func(t *tree.Tree) error) error
}

// meshDevice is the mesh interface the tree names (or the default), and
// whether the tree describes a mesh at all: only then is a device hosted
// and its name claimed.
func meshDevice(r treeReader) (name string, configured bool) {
	name = wgmesh.DefaultInterface
	_ = r.Read(func(t *tree.Tree) error {
		configured = intent.MeshConfigured(t)
		if v, ok := kedgetree.Of(t).Kedge().Mesh().Config().Interface(); ok && v != "" {
			name = v
		}
		return nil
	})
	return name, configured
}

// socketGID resolves --socket-group (a name or a gid; -1 when empty).
func socketGID(g string) (int, error) {
	if g == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("look up socket group: %w", err)
	}
	n, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("look up socket group %s: gid %q: %w", g, grp.Gid, err)
	}
	return n, nil
}

// close releases everything claimed, listeners first (a unix listener
// removes its socket file while the socket's lock still guards it).
func (c *claims) close() error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, ln := range []net.Listener{c.tcp, c.unix} {
		if ln != nil {
			// A served listener was closed by its gRPC server already.
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	if c.device != nil {
		// Not handed over (the start failed before the mesh took it).
		errs = append(errs, c.device.Close())
	}
	for i := len(c.locks) - 1; i >= 0; i-- {
		errs = append(errs, c.locks[i].Close())
	}
	return errors.Join(errs...)
}
