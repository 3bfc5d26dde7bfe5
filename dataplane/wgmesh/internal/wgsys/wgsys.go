// Package wgsys is wgmesh's chokepoint to the operating system: the wgctrl
// client for WireGuard configuration and a netlink handle for link state
// (MTU, addresses, up), both opened inside the device's network namespace.
package wgsys

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
)

// ErrNotSupported means the kernel has no WireGuard link type.
var ErrNotSupported = errors.New("kernel wireguard not supported")

// OpenWireGuard opens a wgctrl client inside t's namespace, so its kernel
// (generic netlink) socket talks to that namespace. Userspace devices are
// reached through their UAPI socket under /var/run/wireguard, which is a
// file system path and therefore shared by every namespace.
func OpenWireGuard(t *nsthread.Thread) (*wgctrl.Client, error) {
	var c *wgctrl.Client
	err := t.Do(func() error {
		var err error
		c, err = wgctrl.New()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open wgctrl client: %w", err)
	}
	return c, nil
}

// Links changes link attributes in one namespace.
type Links struct {
	h *netlink.Handle
	t *nsthread.Thread // the namespace's thread, for requests the handle cannot make
}

// OpenLinks opens a route netlink socket inside t's namespace.
func OpenLinks(t *nsthread.Thread) (*Links, error) {
	var h *netlink.Handle
	err := t.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return &Links{h: h, t: t}, nil
}

// Close releases the netlink socket.
func (l *Links) Close() { l.h.Close() }

// Exists reports whether a link with this name exists.
func (l *Links) Exists(name string) (bool, error) {
	_, err := l.h.LinkByName(name)
	if err == nil {
		return true, nil
	}
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	return false, fmt.Errorf("look up link %s: %w", name, err)
}

// CreateWireGuard creates a kernel WireGuard link. It returns ErrNotSupported
// when the kernel has no wireguard link type (no module).
func (l *Links) CreateWireGuard(name string, mtu int) error {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	err := l.h.LinkAdd(&netlink.Wireguard{LinkAttrs: la})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTSUP):
		return ErrNotSupported
	}
	return fmt.Errorf("create wireguard link %s: %w", name, err)
}

// Delete removes a link; a missing link is not an error.
func (l *Links) Delete(name string) error {
	link, err := l.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := l.h.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// Sync makes the link have this MTU (0 leaves it), exactly these addresses
// (new ones are added before stale ones are removed) and be up. It reports
// whether anything changed and joins partial failures.
func (l *Links) Sync(name string, mtu int, addrs []netip.Prefix) (bool, error) {
	link, err := l.h.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("look up link %s: %w", name, err)
	}
	changed := false
	var errs []error
	if mtu != 0 && link.Attrs().MTU != mtu {
		changed = true
		if err := l.h.LinkSetMTU(link, mtu); err != nil {
			errs = append(errs, fmt.Errorf("set mtu %d on %s: %w", mtu, name, err))
		}
	}
	have, err := l.h.AddrList(link, unix.AF_UNSPEC)
	if err != nil {
		return changed, errors.Join(append(errs, fmt.Errorf("list addresses of %s: %w", name, err))...)
	}
	want := make(map[netip.Prefix]bool, len(addrs))
	for _, p := range addrs {
		want[p] = true
	}
	present := make(map[netip.Prefix]netlink.Addr, len(have))
	for _, a := range have {
		p, ok := toPrefix(a)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue // kernel-made link-local addresses are not ours to manage
		}
		present[p] = a
	}
	for _, p := range addrs {
		if _, ok := present[p]; ok {
			continue
		}
		changed = true
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("parse address %s: %w", p, err))
			continue
		}
		if err := l.h.AddrReplace(link, a); err != nil {
			errs = append(errs, fmt.Errorf("add address %s to %s: %w", p, name, err))
		}
	}
	promoted := false
	for p, a := range present {
		if want[p] {
			continue
		}
		changed = true
		if p.Addr().Is4() && !promoted {
			// Deleting a primary IPv4 address deletes its secondaries
			// unless the link promotes one: a tunnel address moving
			// within its subnet (the new one a secondary of the old)
			// went with it.
			if err := l.promoteSecondaries(link.Attrs().Index); err != nil {
				errs = append(errs, fmt.Errorf("keep addresses of %s: %w", name, err))
				continue
			}
			promoted = true
		}
		if err := l.h.AddrDel(link, &a); err != nil {
			errs = append(errs, fmt.Errorf("delete address %s from %s: %w", p, name, err))
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		changed = true
		if err := l.h.LinkSetUp(link); err != nil {
			errs = append(errs, fmt.Errorf("set %s up: %w", name, err))
		}
	}
	return changed, errors.Join(errs...)
}

// ipv4DevconfPromoteSecondaries is IPV4_DEVCONF_PROMOTE_SECONDARIES of
// linux/ip.h, which x/sys/unix does not name.
const ipv4DevconfPromoteSecondaries = 20

// promoteSecondaries has the kernel promote a secondary IPv4 address of
// link index to primary when its primary is deleted, rather than delete
// the secondaries with it (the default): the link's
// net.ipv4.conf.<name>.promote_secondaries, set through netlink
// (IFLA_AF_SPEC, AF_INET, IFLA_INET_CONF) from the namespace's thread,
// since /proc/sys is read-only in most containers.
func (l *Links) promoteSecondaries(index int) error {
	return l.t.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		req.AddData(msg)
		spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
		conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
		conf.AddRtAttr(ipv4DevconfPromoteSecondaries, nl.Uint32Attr(1))
		req.AddData(spec)
		if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
			return fmt.Errorf("promote secondary addresses of link %d: %w", index, err)
		}
		return nil
	})
}

func toPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
