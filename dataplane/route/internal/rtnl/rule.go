package rtnl

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Rule is a policy routing rule that looks up a table. Src and Dst are the
// zero Prefix when the rule matches any address.
type Rule struct {
	Family   uint8 // unix.AF_INET or unix.AF_INET6
	Priority uint32
	Src      netip.Prefix
	Dst      netip.Prefix
	Table    uint32
	Mark     uint32
	Mask     uint32
	Protocol uint8
	// Other is set for dumped rules with selectors or actions this package
	// does not model (iif, oif, goto, uid range, ...): never equal to ours.
	Other bool
}

const (
	fraDst      = 1
	fraSrc      = 2
	fraIifname  = 3
	fraGoto     = 4
	fraPriority = 6
	fraFwmark   = 10
	fraFlow     = 11
	fraTunID    = 12
	fraSupIfgrp = 13
	fraSupPlen  = 14
	fraTable    = 15
	fraFwmask   = 16
	fraOifname  = 17
	fraL3mdev   = 19
	fraUIDRange = 20
	fraProtocol = 21
	fraIPProto  = 22
	fraSport    = 23
	fraDport    = 24

	frActToTbl = 1
)

func ruleBody(r Rule) []byte {
	b := make([]byte, 0, 80)
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags
	b = append(b, r.Family, uint8(r.Dst.Bits()), uint8(r.Src.Bits()), 0,
		hdrTable(r.Table), 0, 0, frActToTbl)
	if !r.Dst.IsValid() {
		b[1] = 0
	}
	if !r.Src.IsValid() {
		b[2] = 0
	}
	b = native.AppendUint32(b, 0)
	b = appendU32Attr(b, fraPriority, r.Priority)
	b = appendU32Attr(b, fraTable, r.Table)
	if r.Src.IsValid() {
		b = appendAddrAttr(b, fraSrc, r.Src.Addr())
	}
	if r.Dst.IsValid() {
		b = appendAddrAttr(b, fraDst, r.Dst.Addr())
	}
	if r.Mark != 0 || r.Mask != 0 {
		b = appendU32Attr(b, fraFwmark, r.Mark)
		b = appendU32Attr(b, fraFwmask, r.Mask)
	}
	b = appendAttr(b, fraProtocol, []byte{r.Protocol})
	return b
}

// NewRule builds an RTM_NEWRULE request. It has no NLM_F_EXCL: the kernel's
// existence check treats absent selectors as wildcards and would refuse
// "from all" next to "from 10.1.0.0/16"; the caller diffs exactly instead.
func NewRule(r Rule) Request {
	return Request{Type: unix.RTM_NEWRULE, Flags: unix.NLM_F_CREATE, Body: ruleBody(r)}
}

// DelRule builds an RTM_DELRULE request. The kernel matches every attribute
// given, protocol included, so only our rule goes.
func DelRule(r Rule) Request {
	return Request{Type: unix.RTM_DELRULE, Body: ruleBody(r)}
}

// Rules dumps the rules of both families whose protocol is proto.
func (c *Conn) Rules(proto uint8) ([]Rule, error) {
	var out []Rule
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := []byte{fam, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		err := c.Dump(unix.RTM_GETRULE, req, func(typ uint16, p []byte) error {
			if typ != unix.RTM_NEWRULE {
				return nil
			}
			r, err := parseRule(p)
			if err != nil {
				return err
			}
			if r.Protocol == proto {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dump rules: %w", err)
		}
	}
	return out, nil
}

func parseRule(p []byte) (Rule, error) {
	if len(p) < 12 {
		return Rule{}, fmt.Errorf("parse rule: short message")
	}
	r := Rule{Family: p[0], Table: uint32(p[4])}
	dstLen, srcLen := int(p[1]), int(p[2])
	if p[3] != 0 || p[7] != frActToTbl || native.Uint32(p[8:12]) != 0 {
		r.Other = true // tos, another action, or inverted
	}
	var perr error
	walkAttrs(p[12:], func(typ uint16, v []byte) {
		switch typ {
		case fraPriority:
			r.Priority = u32(v)
		case fraTable:
			r.Table = u32(v)
		case fraFwmark:
			r.Mark = u32(v)
		case fraFwmask:
			r.Mask = u32(v)
		case fraProtocol:
			if len(v) == 1 {
				r.Protocol = v[0]
			}
		case fraSrc, fraDst:
			a, ok := netip.AddrFromSlice(v)
			if !ok {
				perr = fmt.Errorf("parse rule: bad address")
				return
			}
			if typ == fraSrc {
				r.Src, perr = a.Prefix(srcLen)
			} else {
				r.Dst, perr = a.Prefix(dstLen)
			}
		case fraSupIfgrp, fraSupPlen:
			// The kernel reports these even when unset, as -1.
			if u32(v) != 0xffffffff {
				r.Other = true
			}
		case fraIifname, fraGoto, fraFlow, fraTunID, fraOifname, fraL3mdev, fraUIDRange, fraIPProto, fraSport, fraDport:
			r.Other = true
		}
	})
	if perr != nil {
		return Rule{}, fmt.Errorf("parse rule: %w", perr)
	}
	return r, nil
}

func u32(v []byte) uint32 {
	if len(v) != 4 {
		return 0
	}
	return native.Uint32(v)
}
