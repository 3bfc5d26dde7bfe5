package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostVethName is the host end's name: "kd" and 11 hex digits of a hash of
// the attachment's identity, so DEL, CHECK and the sweep find it again from
// the container id and ifname alone, and it fits IFNAMSIZ.
func HostVethName(containerID, ifname string) string {
	h := sha256.Sum256([]byte(containerID + "/" + ifname))
	return "kd" + hex.EncodeToString(h[:])[:11]
}

// podLink is what the veth setup produced.
type podLink struct {
	// created: the pair exists because of this call (rollback may
	// delete it; a name clash with an existing pair must not).
	created           bool
	hostName, hostMAC string
	contName, contMAC string
}

// createVeth creates the pair inside netns (container end ifname, host
// end hostName in the host) and brings both ends up. It needs no address,
// so ADD runs it while the registration round trip is in flight.
func createVeth(netns ns.NetNS, ifname, hostName string, mtu int) (podLink, error) {
	// One netlink request creates the pair with the peer already in the
	// pod's netns: no rename dance, no temporary names to leak.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: mtu},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(netns.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return podLink{}, fmt.Errorf("create veth %s/%s: %w", hostName, ifname, err)
	}
	pl := podLink{created: true, hostName: hostName, contName: ifname}
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return pl, fmt.Errorf("find host veth %s: %w", hostName, err)
	}
	pl.hostMAC = host.Attrs().HardwareAddr.String()
	if err := netlink.LinkSetUp(host); err != nil {
		return pl, fmt.Errorf("bring up %s: %w", hostName, err)
	}
	err = netns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		pl.contMAC = link.Attrs().HardwareAddr.String()
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring up %s: %w", ifname, err)
		}
		return nil
	})
	return pl, err
}

// configureVeth gives the host end the gateways and the container end its
// addresses, an on-link route to each gateway and a default route per
// family via it.
func configureVeth(netns ns.NetNS, ifname, hostName string, addrs []netip.Prefix, gws []netip.Addr) error {
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("find host veth %s: %w", hostName, err)
	}
	for _, gw := range gws {
		a := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(gw, gw.BitLen()))}
		if gw.Is6() {
			// No DAD: the same gateway sits on every host veth by design.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(host, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add gateway %s to %s: %w", gw, hostName, err)
		}
	}
	return netns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		for _, a := range addrs {
			na := &netlink.Addr{IPNet: ipNet(a)}
			if a.Addr().Is6() {
				na.Flags = unix.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(link, na); err != nil {
				return fmt.Errorf("add address %s to %s: %w", a, ifname, err)
			}
		}
		for _, gw := range gws {
			onLink := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.PrefixFrom(gw, gw.BitLen())), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteAdd(onLink); err != nil {
				return fmt.Errorf("add route to gateway %s: %w", gw, err)
			}
			def := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: defaultDst(gw), Gw: net.IP(gw.AsSlice())}
			if err := netlink.RouteAdd(def); err != nil {
				return fmt.Errorf("add default route via %s: %w", gw, err)
			}
		}
		return nil
	})
}

// deleteHostVeth removes the pair by its host end; a missing link is
// success (the netns went away and took the pair with it).
func deleteHostVeth(hostName string) error {
	l, err := netlink.LinkByName(hostName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s: %w", hostName, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", hostName, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func defaultDst(gw netip.Addr) *net.IPNet {
	if gw.Is4() {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// checkLink verifies from inside netns that ifname exists, is up and
// carries every address, and that a default route exists per gateway.
func checkLink(netns ns.NetNS, ifname string, addrs []netip.Prefix, gws []netip.Addr) error {
	return netns.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		if link.Attrs().OperState == netlink.OperDown || link.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("check %s: link is down", ifname)
		}
		have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", ifname, err)
		}
		for _, want := range addrs {
			found := false
			for _, a := range have {
				p, ok := netip.AddrFromSlice(a.IP)
				ones, _ := a.Mask.Size()
				if ok && netip.PrefixFrom(p.Unmap(), ones) == want {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("check %s: address %s missing", ifname, want)
			}
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list routes of %s: %w", ifname, err)
		}
		for _, gw := range gws {
			found := false
			for _, r := range routes {
				g, ok := netip.AddrFromSlice(r.Gw)
				if ok && g.Unmap() == gw && (r.Dst == nil || isDefault(r.Dst)) {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("check %s: default route via %s missing", ifname, gw)
			}
		}
		return nil
	})
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
