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

// Backend names a dataplane backend the probe judges.
type Backend string

// The backends.
const (
	Route  Backend = "route"
	WGMesh Backend = "wgmesh"
	BPFMap Backend = "bpfmap"
	VLAN   Backend = "vlan"
	Shm    Backend = "shm"
)

// Result is one backend's verdict.
type Result struct {
	Backend   Backend
	Available bool
	// Reason says what was found, for available and unavailable alike.
	Reason string
}

// Report is the verdict on every backend, one field each, so the daemon
// asks for a backend by name in Go rather than by string.
type Report struct {
	Route, WGMesh, BPFMap, VLAN, Shm Result
}

// All returns the results in a fixed order, for logging.
func (r Report) All() []Result { return []Result{r.Route, r.WGMesh, r.BPFMap, r.VLAN, r.Shm} }

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
func Run(e Env) Report {
	root := e.UID == 0
	rootWhy := "running as root"
	if !root {
		rootWhy = fmt.Sprintf("not root (euid %d): netlink and BPF changes need CAP_NET_ADMIN/CAP_BPF", e.UID)
	}
	var out Report

	out.Route = Result{Backend: Route, Available: root, Reason: rootWhy}

	tun := e.exists("/dev/net/tun")
	wgKernel, wgWhy := e.module("wireguard")
	switch {
	case !root:
		out.WGMesh = Result{Backend: WGMesh, Reason: rootWhy}
	case wgKernel:
		out.WGMesh = Result{Backend: WGMesh, Available: true, Reason: "kernel WireGuard: " + wgWhy}
	case tun:
		out.WGMesh = Result{Backend: WGMesh, Available: true, Reason: "userspace wireguard-go over /dev/net/tun (kernel module: " + wgWhy + ")"}
	default:
		out.WGMesh = Result{Backend: WGMesh, Reason: "no kernel WireGuard (" + wgWhy + ") and no /dev/net/tun for wireguard-go"}
	}

	bpf, bpfWhy := e.bpffs()
	out.BPFMap = Result{Backend: BPFMap, Available: root && bpf, Reason: join(rootWhy, bpfWhy, root)}

	vlan, vlanWhy := e.module("8021q")
	out.VLAN = Result{Backend: VLAN, Available: root && vlan, Reason: join(rootWhy, "8021q: "+vlanWhy, root)}

	shmOK, shmWhy := e.writable("/dev/shm")
	out.Shm = Result{Backend: Shm, Available: shmOK, Reason: "/dev/shm: " + shmWhy}
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
