// Package probe checks what this machine allows the dataplane backends
// to do (root, TUN, bpffs, kernel modules, shared memory) so the daemon
// can say at start which backends will work and, for the ones that will
// not, why. It only reads: it loads no module and mounts nothing.
package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Result is one backend's verdict.
type Result struct {
	Backend   string
	Available bool
	// Reason says what was found, for available and unavailable alike.
	Reason string
}

// Env is what the probe looks at; tests point it at fake roots.
type Env struct {
	// UID is the effective uid.
	UID int
	// Root is prepended to every file path ("" for the real machine).
	Root string
	// Release is the kernel release (uname -r).
	Release string
}

// Host returns the environment of this process.
func Host() Env {
	var u unix.Utsname
	rel := ""
	if err := unix.Uname(&u); err == nil {
		rel = string(bytes.TrimRight(u.Release[:], "\x00"))
	}
	return Env{UID: os.Geteuid(), Release: rel}
}

// Run probes every backend.
func Run(e Env) []Result {
	root := e.UID == 0
	rootWhy := "running as root"
	if !root {
		rootWhy = fmt.Sprintf("not root (euid %d): netlink and BPF changes need CAP_NET_ADMIN/CAP_BPF", e.UID)
	}
	var out []Result

	out = append(out, Result{Backend: "route", Available: root, Reason: rootWhy})

	tun := e.exists("/dev/net/tun")
	wgKernel, wgWhy := e.module("wireguard")
	switch {
	case !root:
		out = append(out, Result{Backend: "wgmesh", Reason: rootWhy})
	case wgKernel:
		out = append(out, Result{Backend: "wgmesh", Available: true, Reason: "kernel WireGuard: " + wgWhy})
	case tun:
		out = append(out, Result{Backend: "wgmesh", Available: true, Reason: "userspace wireguard-go over /dev/net/tun (kernel module: " + wgWhy + ")"})
	default:
		out = append(out, Result{Backend: "wgmesh", Reason: "no kernel WireGuard (" + wgWhy + ") and no /dev/net/tun for wireguard-go"})
	}

	bpf, bpfWhy := e.bpffs()
	out = append(out, Result{Backend: "bpfmap", Available: root && bpf, Reason: join(rootWhy, bpfWhy, root)})

	vlan, vlanWhy := e.module("8021q")
	out = append(out, Result{Backend: "vlan", Available: root && vlan, Reason: join(rootWhy, "8021q: "+vlanWhy, root)})

	shmOK, shmWhy := e.writable("/dev/shm")
	out = append(out, Result{Backend: "shm", Available: shmOK, Reason: "/dev/shm: " + shmWhy})
	return out
}

func join(rootWhy, why string, root bool) string {
	if !root {
		return rootWhy + "; " + why
	}
	return why
}

func (e Env) path(p string) string { return filepath.Join(e.Root, p) }

func (e Env) exists(p string) bool {
	_, err := os.Stat(e.path(p))
	return err == nil
}

// module reports whether a kernel module is loaded, built in, or at least
// installed for this kernel (so modprobe could load it).
func (e Env) module(name string) (bool, string) {
	if e.exists("/sys/module/" + name) {
		return true, "module loaded (/sys/module/" + name + ")"
	}
	if e.Release != "" {
		if f, err := os.ReadFile(e.path("/lib/modules/" + e.Release + "/modules.builtin")); err == nil &&
			bytes.Contains(f, []byte("/"+name+".ko")) {
			return true, "built into the kernel"
		}
		if f, err := os.ReadFile(e.path("/lib/modules/" + e.Release + "/modules.dep")); err == nil &&
			bytes.Contains(f, []byte("/"+name+".ko")) {
			return true, "installed, loadable with modprobe " + name
		}
	}
	return false, "module not loaded and not installed for kernel " + e.Release
}

// bpffs reports whether /sys/fs/bpf is a bpffs or one could be mounted.
func (e Env) bpffs() (bool, string) {
	f, err := os.Open(e.path("/proc/mounts"))
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 3 && fs[2] == "bpf" {
				return true, "bpffs mounted at " + fs[1]
			}
		}
	}
	b, err := os.ReadFile(e.path("/proc/filesystems"))
	if err == nil && bytes.Contains(b, []byte("\tbpf\n")) {
		return true, "bpffs not mounted but supported by the kernel (mountable at /sys/fs/bpf)"
	}
	return false, "kernel does not list bpf in /proc/filesystems"
}

func (e Env) writable(dir string) (bool, string) {
	err := unix.Access(e.path(dir), unix.W_OK)
	switch {
	case err == nil:
		return true, "writable"
	case errors.Is(err, os.ErrNotExist):
		return false, "missing"
	}
	return false, "not writable: " + err.Error()
}
