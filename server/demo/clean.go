package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/server/hostlock"
)

// routeProtocol is the daemon's route protocol (route.DefaultProtocol),
// whose lock in a namespace says a daemon acts there.
const routeProtocol = 107

// Clean removes what the instance left: its namespace (if the demo
// created it), its pin dir, its segment, its socket, the lock files a
// killed daemon left (its own and those of its mesh device names), the
// stale WireGuard sockets of those devices, and the manifest. The tree,
// users, TLS material and keys in the data dir stay.
//
// It first takes every lock a daemon of this instance would hold: while
// one is held (the demo runs, or another daemon uses the namespace) it
// removes nothing and says who holds it. report is told each removal.
func Clean(in Instance, report func(string)) (err error) {
	me := hostlock.Self(in.DataDir)
	var locks []*hostlock.Lock
	defer func() {
		for i := len(locks) - 1; i >= 0; i-- {
			err = errors.Join(err, locks[i].Close())
		}
	}()
	// The lock files a killed daemon left behind: once taken here, they
	// are removed when released.
	var stale []string
	for _, p := range []string{filepath.Join(in.DataDir, hostlock.DataDirLock), in.Socket + ".lock", in.ShmPath + ".lock"} {
		if exists(p) {
			stale = append(stale, p)
		}
	}
	var held hostlock.Conflicts
	take := func(l *hostlock.Lock, err error) {
		if err != nil {
			held = append(held, err)
			return
		}
		locks = append(locks, l)
	}
	take(hostlock.DataDir(in.DataDir, me))
	take(hostlock.UnixSocket(in.Socket, me))
	take(hostlock.Segment(in.ShmPath, me))
	pins := in.PinDir != "off" && exists(in.PinDir)
	if pins {
		take(hostlock.PinDir(in.PinDir))
	}
	delNS := false
	if in.NetNSCreated {
		ok, err := netnsExists(in.NetNS)
		if err != nil {
			held = append(held, err)
		}
		if ok {
			take(hostlock.RouteProtocol(in.NetNS, routeProtocol, me))
			delNS = true
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("clean demo: nothing removed: %w", held)
	}

	var errs []error
	remove := func(p string) {
		err := os.Remove(p)
		switch {
		case err == nil:
			report("removed " + p)
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if delNS {
		if err := deleteNetns(in.NetNS); err != nil {
			errs = append(errs, err)
		} else {
			report("deleted network namespace " + in.NetNS)
		}
	}
	if pins {
		if err := os.RemoveAll(in.PinDir); err != nil {
			errs = append(errs, fmt.Errorf("remove pins: %w", err))
		} else {
			report("removed BPF pin dir " + in.PinDir)
		}
	}
	remove(in.ShmPath)
	remove(in.Socket)
	errs = append(errs, cleanDevices(in.DataDir, me, report))
	for _, p := range stale {
		report("removed " + p + " (left by a killed daemon)")
	}
	remove(filepath.Join(in.DataDir, ManifestFile))
	return errors.Join(errs...)
}

// cleanDevices removes the WireGuard device name locks a killed daemon of
// this data dir left, with the device's socket when nobody answers on it
// (wireguard-go leaves it behind when killed).
func cleanDevices(dataDir string, me hostlock.Holder, report func(string)) error {
	ents, err := os.ReadDir(hostlock.WireGuardDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", hostlock.WireGuardDir, err)
	}
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), hostlock.WireGuardLockSuffix)
		if !ok || !recordedBy(filepath.Join(hostlock.WireGuardDir, e.Name()), dataDir) {
			continue
		}
		l, err := hostlock.WireGuardDevice(name, me)
		if err != nil {
			if errors.Is(err, hostlock.ErrHeld) {
				continue // a live daemon's (not this data dir's after all)
			}
			errs = append(errs, err)
			continue
		}
		sock := filepath.Join(hostlock.WireGuardDir, name+".sock")
		if exists(sock) && !answers(sock) {
			if err := os.Remove(sock); err == nil {
				report("removed stale WireGuard socket " + sock)
			}
		}
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		} else {
			report("removed " + hostlock.WireGuardLockPath(name))
		}
	}
	return errors.Join(errs...)
}

// recordedBy reports whether a lock file records dataDir as its holder's.
func recordedBy(path, dataDir string) bool {
	b, err := os.ReadFile(path)
	var h hostlock.Holder
	return err == nil && json.Unmarshal(b, &h) == nil && h.DataDir == dataDir
}

// answers reports whether a process serves the unix socket.
func answers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
