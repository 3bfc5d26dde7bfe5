package demo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted (as ip netns does).
const netnsDir = "/run/netns"

// Prepare creates the instance's namespace when it is missing, recording
// in the manifest (before creating it) that the demo did, so the cleanup
// deletes it; a namespace that already exists is used as it is and stays
// the demo's only if the previous manifest says the demo made it.
func (in *Instance) Prepare(prev Instance, hadPrev bool) error {
	if in.NetNS == "" {
		return nil
	}
	exists, err := netnsExists(in.NetNS)
	if err != nil {
		return err
	}
	if exists {
		in.NetNSCreated = hadPrev && prev.NetNS == in.NetNS && prev.NetNSCreated
		return in.Save()
	}
	in.NetNSCreated = true
	if err := in.Save(); err != nil {
		return err
	}
	return createNetns(in.NetNS)
}

// netnsExists reports whether /run/netns/name is a namespace; a plain
// file there (a failed ip netns add) is an error to fix by hand.
func netnsExists(name string) (bool, error) {
	p := filepath.Join(netnsDir, name)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("check network namespace: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return false, fmt.Errorf("check network namespace: %w", err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return false, fmt.Errorf("check network namespace: %s exists but is not a namespace (remove it)", p)
	}
	return true, nil
}

// createNetns creates the named namespace with lo up and a veth pair
// eth0 (192.0.2.2/24) and eth0p, both up. On failure it deletes what it
// made.
func createNetns(name string) error {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		// NewNamed moves the thread into the new namespace; the thread
		// goes back to the scheduler only once it is home again.
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("create network namespace %s: %w", name, err)}
			return
		}
		defer home.Close()
		ns, err := netns.NewNamed(name)
		if netns.Set(home) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			err = fmt.Errorf("create network namespace %s: %w", name, err)
		}
		done <- result{ns, err}
	}()
	r := <-done
	if r.err != nil {
		return r.err
	}
	defer r.ns.Close()
	if err := addLinks(r.ns); err != nil {
		return errors.Join(fmt.Errorf("set up network namespace %s: %w", name, err), netns.DeleteNamed(name))
	}
	return nil
}

// addLinks gives the namespace lo up and the veth eth0 with 192.0.2.2/24.
func addLinks(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0p"}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth eth0: %w", err)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 2), Mask: net.CIDRMask(24, 32)}}); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	for _, n := range []string{"lo", "eth0", "eth0p"} {
		l, err := h.LinkByName(n)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", n, err)
		}
	}
	return nil
}

// deleteNetns removes the named namespace (as ip netns del).
func deleteNetns(name string) error {
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}
