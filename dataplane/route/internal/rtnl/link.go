package rtnl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is a network interface as the backend sees it.
type Link struct {
	Index  int
	Name   string
	Kind   string // "vlan", "macvlan", "veth", ... ("" for physical devices)
	Parent int    // parent ifindex for vlan/macvlan, else 0
	VLANID int
	Mode   string // macvlan mode ("bridge", ...)
	Alias  string
	Up     bool
}

// Links lists the interfaces in the namespace.
func (c *Conn) Links() ([]Link, error) {
	ls, err := c.links.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]Link, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		k := Link{Index: a.Index, Name: a.Name, Kind: l.Type(), Parent: a.ParentIndex,
			Alias: a.Alias, Up: a.Flags&net.FlagUp != 0}
		switch v := l.(type) {
		case *netlink.Vlan:
			k.VLANID = v.VlanId
		case *netlink.Macvlan:
			k.Mode = macvlanModeName(v.Mode)
		case *netlink.Device:
			k.Kind = "" // plain devices (loopback, physical)
		}
		out = append(out, k)
	}
	return out, nil
}

func macvlanModeName(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return "default"
}

// AddVLAN creates a VLAN link on parent, marked with alias.
func (c *Conn) AddVLAN(name string, parent, id int, alias string) error {
	l := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, VlanId: id}
	if err := c.links.LinkAdd(l); err != nil {
		return fmt.Errorf("add vlan %s: %w", name, err)
	}
	return c.setAlias(name, alias)
}

// AddMacvlan creates a bridge-mode macvlan link on parent, marked with alias.
func (c *Conn) AddMacvlan(name string, parent int, alias string) error {
	l := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := c.links.LinkAdd(l); err != nil {
		return fmt.Errorf("add macvlan %s: %w", name, err)
	}
	return c.setAlias(name, alias)
}

func (c *Conn) setAlias(name, alias string) error {
	l, err := c.links.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := c.links.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("set alias of %s: %w", name, err)
	}
	return nil
}

// DelLink deletes the link with the given index.
func (c *Conn) DelLink(index int) error {
	l, err := c.links.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if err := c.links.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// SetUp sets the administrative state of the link.
func (c *Conn) SetUp(index int, up bool) error {
	l, err := c.links.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	if up {
		err = c.links.LinkSetUp(l)
	} else {
		err = c.links.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set link %s up=%t: %w", l.Attrs().Name, up, err)
	}
	return nil
}

// Addrs lists the global and site addresses on the link; kernel-made IPv6
// link-local addresses are left out because nobody configures them.
func (c *Conn) Addrs(index int) ([]netip.Prefix, error) {
	l, err := c.links.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("find link %d: %w", index, err)
	}
	as, err := c.links.AddrList(l, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		bits, _ := a.Mask.Size()
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		out = append(out, netip.PrefixFrom(ip, p.Bits()))
	}
	return out, nil
}

// AddAddr adds (or keeps) an address on the link.
func (c *Conn) AddAddr(index int, p netip.Prefix) error {
	return c.addr(index, p, true)
}

// DelAddr removes an address from the link.
func (c *Conn) DelAddr(index int, p netip.Prefix) error {
	return c.addr(index, p, false)
}

func (c *Conn) addr(index int, p netip.Prefix, add bool) error {
	l, err := c.links.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("find link %d: %w", index, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if add {
		err = c.links.AddrReplace(l, a)
	} else {
		err = c.links.AddrDel(l, a)
	}
	if err != nil {
		return fmt.Errorf("change address %s on %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// ipv4DevconfPromoteSecondaries is IPV4_DEVCONF_PROMOTE_SECONDARIES of
// linux/ip.h, which x/sys/unix does not name.
const ipv4DevconfPromoteSecondaries = 20

// PromoteSecondaries has the kernel promote a secondary IPv4 address of
// the link to primary when its primary is deleted, rather than delete the
// secondaries with it (the default): replacing an address by another in
// its subnet adds the new one as a secondary, then deletes the old one.
// It is the link's net.ipv4.conf.<name>.promote_secondaries, set through
// netlink (IFLA_AF_SPEC, AF_INET, IFLA_INET_CONF) so that it applies in
// the connection's namespace, not the process's.
func (c *Conn) PromoteSecondaries(index int) error {
	var b []byte
	b = append(b, unix.AF_UNSPEC, 0)
	b = native.AppendUint16(b, 0)             // type
	b = native.AppendUint32(b, uint32(index)) // index
	b = native.AppendUint32(b, 0)             // flags
	b = native.AppendUint32(b, 0)             // change
	conf := appendAttr(nil, ipv4DevconfPromoteSecondaries, native.AppendUint32(nil, 1))
	inet := appendAttr(nil, unix.IFLA_INET_CONF|unix.NLA_F_NESTED, conf)
	af := appendAttr(nil, unix.AF_INET|unix.NLA_F_NESTED, inet)
	b = appendAttr(b, unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, af)
	errs, err := c.Exec(context.Background(), []Request{{Type: unix.RTM_SETLINK, Body: b}}, 1)
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("promote secondary addresses of link %d: %w", index, err)
	}
	return nil
}

// VLANSupported reports whether the kernel can make 802.1Q links.
func (c *Conn) VLANSupported() (bool, error) { return c.KindSupported("vlan") }

// KindSupported reports whether the kernel knows the link kind. It asks the
// kernel to create a link of that kind with no name, parent or properties:
// a known driver rejects it in validation (EINVAL; for vlan, "VLAN
// properties not specified") and nothing is created; an unknown kind, after
// the kernel's own attempt to load its module, is EOPNOTSUPP. Only use it
// for kinds that need a parent or properties (vlan, macvlan): a veth, for
// one, would really be made.
func (c *Conn) KindSupported(kind string) (bool, error) {
	var b []byte
	b = append(b, unix.AF_UNSPEC, 0)
	b = native.AppendUint16(b, 0) // type
	b = native.AppendUint32(b, 0) // index
	b = native.AppendUint32(b, 0) // flags
	b = native.AppendUint32(b, 0) // change
	info := appendAttr(nil, unix.IFLA_INFO_KIND, append([]byte(kind), 0))
	b = appendAttr(b, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	errs, err := c.Exec(context.Background(), []Request{{Type: unix.RTM_NEWLINK, Flags: unix.NLM_F_CREATE | unix.NLM_F_EXCL, Body: b}}, 1)
	if err != nil {
		return false, fmt.Errorf("probe link kind %s: %w", kind, err)
	}
	if errors.Is(errs[0], unix.EOPNOTSUPP) {
		return false, nil
	}
	return true, nil
}
