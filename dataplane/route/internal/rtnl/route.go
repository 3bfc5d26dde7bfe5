package rtnl

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Route is a kernel unicast route as this package reads and writes it.
type Route struct {
	Dst      netip.Prefix
	Gateway  netip.Addr // invalid when none
	OIF      int        // 0 when none
	Table    uint32
	Priority uint32     // metric
	Src      netip.Addr // preferred source, invalid when none
	Scope    uint8
	Protocol uint8
	Type     uint8
	// Multipath is set for dumped routes with RTA_MULTIPATH, whose next
	// hops are in Nexthops; a desired route with Nexthops is sent with
	// RTA_MULTIPATH (and without Gateway and OIF).
	Multipath bool
	Nexthops  []Nexthop
}

// Nexthop is one path of a multipath route (struct rtnexthop and its
// RTA_GATEWAY).
type Nexthop struct {
	Gateway netip.Addr // invalid when none
	OIF     int        // 0 when none
	Hops    uint8      // weight - 1
}

// Route message flags for Exec.
const (
	// FlagCreate adds a route and fails with EEXIST if any route (ours or
	// not) holds the same key, so we never overwrite a foreign route.
	FlagCreate = unix.NLM_F_CREATE | unix.NLM_F_EXCL
	// FlagReplace replaces the route with the same key (one we own).
	FlagReplace = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	// FlagEcho, added to either, asks the kernel for a copy of the
	// route it installed (see Conn.ExecEcho).
	FlagEcho = unix.NLM_F_ECHO
)

func family(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// appendAddrAttr appends an address attribute without allocating.
func appendAddrAttr(b []byte, typ uint16, a netip.Addr) []byte {
	n := 16
	if a.Is4() {
		n = 4
	}
	b = native.AppendUint16(b, uint16(unix.SizeofRtAttr+n))
	b = native.AppendUint16(b, typ)
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// rtmsg header table field: tables above 255 travel in RTA_TABLE only.
func hdrTable(t uint32) uint8 {
	if t > 255 {
		return unix.RT_TABLE_UNSPEC
	}
	return uint8(t)
}

// RouteMsgSize is a typical route request body size, for sizing arenas.
const RouteMsgSize = 72

// NewRoute builds an RTM_NEWROUTE request with the given flags (FlagCreate or FlagReplace).
func NewRoute(r Route, flags uint16) Request {
	_, req := AppendRoute(nil, r, flags)
	return req
}

// AppendRoute is NewRoute building the body at the end of arena, so a
// large batch costs a few allocations instead of one per route. It returns
// the grown arena; the Request's Body stays valid if arena is reallocated.
func AppendRoute(arena []byte, r Route, flags uint16) ([]byte, Request) {
	start := len(arena)
	b := append(arena, family(r.Dst), uint8(r.Dst.Bits()), 0, 0,
		hdrTable(r.Table), r.Protocol, r.Scope, r.Type)
	b = native.AppendUint32(b, 0) // rtm_flags
	b = appendU32Attr(b, unix.RTA_TABLE, r.Table)
	if r.Dst.Bits() > 0 {
		b = appendAddrAttr(b, unix.RTA_DST, r.Dst.Addr())
	}
	b = appendU32Attr(b, unix.RTA_PRIORITY, r.Priority)
	if r.OIF != 0 {
		b = appendU32Attr(b, unix.RTA_OIF, uint32(r.OIF))
	}
	if r.Gateway.IsValid() {
		b = appendAddrAttr(b, unix.RTA_GATEWAY, r.Gateway)
	}
	if r.Src.IsValid() {
		b = appendAddrAttr(b, unix.RTA_PREFSRC, r.Src)
	}
	if len(r.Nexthops) > 0 {
		b = appendMultipath(b, r.Nexthops)
	}
	return b, Request{Type: unix.RTM_NEWROUTE, Flags: flags, Body: b[start:len(b):len(b)]}
}

// appendMultipath appends RTA_MULTIPATH: one struct rtnexthop (length,
// flags, hops, ifindex) per path, each followed by its RTA_GATEWAY.
func appendMultipath(b []byte, nhs []Nexthop) []byte {
	at := len(b)
	b = native.AppendUint16(b, 0) // attribute length, filled below
	b = native.AppendUint16(b, unix.RTA_MULTIPATH)
	for _, h := range nhs {
		n := len(b)
		b = native.AppendUint16(b, 0) // rtnh_len, filled below
		b = append(b, 0, h.Hops)      // rtnh_flags, rtnh_hops
		b = native.AppendUint32(b, uint32(int32(h.OIF)))
		if h.Gateway.IsValid() {
			b = appendAddrAttr(b, unix.RTA_GATEWAY, h.Gateway)
		}
		native.PutUint16(b[n:], uint16(len(b)-n))
	}
	native.PutUint16(b[at:], uint16(len(b)-at))
	return b
}

// parseMultipath reads RTA_MULTIPATH's next hops.
func parseMultipath(v []byte) []Nexthop {
	var out []Nexthop
	for len(v) >= unix.SizeofRtNexthop {
		l := int(native.Uint16(v[0:2]))
		if l < unix.SizeofRtNexthop || l > len(v) {
			break
		}
		h := Nexthop{Hops: v[3], OIF: int(int32(native.Uint32(v[4:8])))}
		walkAttrs(v[unix.SizeofRtNexthop:l], func(typ uint16, a []byte) {
			if typ == unix.RTA_GATEWAY {
				if addr, ok := netip.AddrFromSlice(a); ok {
					h.Gateway = addr
				}
			}
		})
		out = append(out, h)
		v = v[(l+3)&^3:]
	}
	return out
}

// DelRoute builds an RTM_DELROUTE request for the route with r's key
// (destination, table, metric) and protocol. The kernel matches the
// protocol, so a foreign route with the same key is never deleted.
func DelRoute(r Route) Request {
	_, req := AppendDelRoute(nil, r)
	return req
}

// AppendDelRoute is DelRoute building into arena, like AppendRoute.
func AppendDelRoute(arena []byte, r Route) ([]byte, Request) {
	start := len(arena)
	// Scope "nowhere" and type 0 are wildcards for deletion.
	b := append(arena, family(r.Dst), uint8(r.Dst.Bits()), 0, 0,
		hdrTable(r.Table), r.Protocol, unix.RT_SCOPE_NOWHERE, 0)
	b = native.AppendUint32(b, 0)
	b = appendU32Attr(b, unix.RTA_TABLE, r.Table)
	if r.Dst.Bits() > 0 {
		b = appendAddrAttr(b, unix.RTA_DST, r.Dst.Addr())
	}
	b = appendU32Attr(b, unix.RTA_PRIORITY, r.Priority)
	return b, Request{Type: unix.RTM_DELROUTE, Body: b[start:len(b):len(b)]}
}

// Routes dumps the unicast routes of both families, all tables, whose
// protocol is proto. The kernel filters (strict checking), so foreign
// routes are not transferred.
func (c *Conn) Routes(proto uint8) ([]Route, error) {
	var out []Route
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := []byte{fam, 0, 0, 0, 0, proto, 0, 0, 0, 0, 0, 0}
		err := c.Dump(unix.RTM_GETROUTE, req, func(typ uint16, p []byte) error {
			if typ != unix.RTM_NEWROUTE {
				return nil
			}
			r, ok, err := parseRoute(p)
			if err != nil {
				return err
			}
			// Older kernels ignore the filter; check again.
			if ok && r.Protocol == proto {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dump routes: %w", err)
		}
	}
	return out, nil
}

func parseRoute(p []byte) (Route, bool, error) {
	if len(p) < unix.SizeofRtMsg {
		return Route{}, false, fmt.Errorf("parse route: short message")
	}
	fam, dstLen := p[0], int(p[1])
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		return Route{}, false, nil
	}
	r := Route{Table: uint32(p[4]), Protocol: p[5], Scope: p[6], Type: p[7]}
	if p[2] != 0 || p[3] != 0 { // source-specific or TOS routes are never ours
		return Route{}, false, nil
	}
	dst := netip.IPv4Unspecified()
	if fam == unix.AF_INET6 {
		dst = netip.IPv6Unspecified()
	}
	walkAttrs(p[unix.SizeofRtMsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.RTA_TABLE:
			if len(v) == 4 {
				r.Table = native.Uint32(v)
			}
		case unix.RTA_DST:
			if a, ok := netip.AddrFromSlice(v); ok {
				dst = a
			}
		case unix.RTA_GATEWAY:
			if a, ok := netip.AddrFromSlice(v); ok {
				r.Gateway = a
			}
		case unix.RTA_PREFSRC:
			if a, ok := netip.AddrFromSlice(v); ok {
				r.Src = a
			}
		case unix.RTA_OIF:
			if len(v) == 4 {
				r.OIF = int(native.Uint32(v))
			}
		case unix.RTA_PRIORITY:
			if len(v) == 4 {
				r.Priority = native.Uint32(v)
			}
		case unix.RTA_MULTIPATH:
			r.Multipath = true
			r.Nexthops = parseMultipath(v)
		}
	})
	pfx, err := dst.Prefix(dstLen)
	if err != nil {
		return Route{}, false, fmt.Errorf("parse route: %w", err)
	}
	r.Dst = pfx
	return r, true, nil
}
