package gribi

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	aftpb "github.com/openconfig/gribi/v1/proto/gribi_aft"
	enums "github.com/openconfig/gribi/v1/proto/gribi_aft/enums"
	spb "github.com/openconfig/gribi/v1/proto/service"
	wpb "github.com/openconfig/ygot/proto/ywrapper"

	"github.com/guildhouse-co/kedge/models/aft"
)

// errUnsupportedEntry: an AFT this server does not hold (MPLS, MAC,
// policy forwarding).
var errUnsupportedEntry = errors.New("unsupported AFT")

// toOp converts a wire operation (its election and network instance
// already checked) into a RIB operation, written to op (which the caller
// allocates, a request's operations together). A malformed entry that
// the RIB would reject anyway (a bad prefix) converts into an Op the RIB
// fails with its reason; only entries of AFTs Kedge does not hold are
// errors.
func toOp(o *spb.AFTOperation, session string, op *aft.Op) error {
	*op = aft.Op{ID: o.GetId()}
	switch o.GetOp() {
	case spb.AFTOperation_ADD:
		op.Verb = aft.Add
	case spb.AFTOperation_REPLACE:
		op.Verb = aft.Replace
	case spb.AFTOperation_DELETE:
		op.Verb = aft.Delete
	default:
		return fmt.Errorf("convert operation %d: unsupported operation type %s", o.GetId(), o.GetOp())
	}
	e := &op.Entry
	e.Meta.Session = session
	switch t := o.GetEntry().(type) {
	case *spb.AFTOperation_NextHop:
		e.Kind = aft.KindNextHop
		e.NH = nextHopOf(t.NextHop)
	case *spb.AFTOperation_NextHopGroup:
		e.Kind = aft.KindNextHopGroup
		e.NHG.ID = t.NextHopGroup.GetId()
		g := t.NextHopGroup.GetNextHopGroup()
		e.NHG.Backup = g.GetBackupNextHopGroup().GetValue()
		for _, m := range g.GetNextHop() {
			e.NHG.Members = append(e.NHG.Members, aft.Member{Index: m.GetIndex(), Weight: m.GetNextHop().GetWeight().GetValue()})
		}
		sortMembers(e.NHG.Members)
	case *spb.AFTOperation_Ipv4:
		e.Kind = aft.KindIPv4
		e.IP = ipEntryOf(t.Ipv4.GetPrefix(), t.Ipv4.GetIpv4Entry())
	case *spb.AFTOperation_Ipv6:
		e.Kind = aft.KindIPv6
		e.IP = ipEntryOf(t.Ipv6.GetPrefix(), t.Ipv6.GetIpv6Entry())
	case nil:
		return fmt.Errorf("convert operation %d: %w: no entry", o.GetId(), errUnsupportedEntry)
	default:
		return fmt.Errorf("convert operation %d: %w %T", o.GetId(), errUnsupportedEntry, t)
	}
	return nil
}

// sortMembers orders a group's members by index (the RIB refuses a
// repeated index).
func sortMembers(ms []aft.Member) {
	slices.SortFunc(ms, func(a, b aft.Member) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
}

// ipEntry is what an IPv4 or IPv6 entry message carries.
type ipEntry interface {
	GetNextHopGroup() *wpb.UintValue
	GetNextHopGroupNetworkInstance() *wpb.StringValue
	GetEntryMetadata() *wpb.BytesValue
}

func ipEntryOf(prefix string, m ipEntry) aft.IPEntry {
	// An unparsable prefix stays invalid; the RIB fails it.
	p, _ := netip.ParsePrefix(prefix)
	e := aft.IPEntry{Prefix: p, NHG: m.GetNextHopGroup().GetValue()}
	if md := m.GetEntryMetadata().GetValue(); len(md) > 0 {
		e.Metadata = slices.Clone(md)
	}
	return e
}

// nextHopOf reads a next hop: its gateway and interface, and in
// Unsupported what else it asks for (the kernel backend cannot program
// encapsulation, MAC rewrites or a hop into another network instance).
func nextHopOf(k *aftpb.Afts_NextHopKey) aft.NextHop {
	nh := aft.NextHop{Index: k.GetIndex()}
	m := k.GetNextHop()
	var unsup []string
	if s := m.GetIpAddress().GetValue(); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			unsup = append(unsup, fmt.Sprintf("ip-address %q", s))
		} else {
			nh.IP = a.Unmap()
		}
	}
	if ifn := m.GetInterfaceRef().GetInterface().GetValue(); ifn != "" {
		if validIfName(ifn) {
			nh.Interface = ifn
		} else {
			unsup = append(unsup, fmt.Sprintf("interface %q", ifn))
		}
	}
	if m.GetInterfaceRef().GetSubinterface() != nil {
		unsup = append(unsup, "subinterface")
	}
	if m.GetMacAddress().GetValue() != "" {
		unsup = append(unsup, "mac-address")
	}
	if m.GetEncapsulateHeader() != enums.OpenconfigAftTypesEncapsulationHeaderType_OPENCONFIGAFTTYPESENCAPSULATIONHEADERTYPE_UNSET ||
		len(m.GetEncapHeader()) > 0 || m.GetIpInIp() != nil || m.GetGre() != nil {
		unsup = append(unsup, "encapsulation")
	}
	if m.GetDecapsulateHeader() != enums.OpenconfigAftTypesEncapsulationHeaderType_OPENCONFIGAFTTYPESENCAPSULATIONHEADERTYPE_UNSET {
		unsup = append(unsup, "decapsulation")
	}
	if m.GetNetworkInstance().GetValue() != "" {
		unsup = append(unsup, "network-instance")
	}
	if len(m.GetPushedMplsLabelStack()) > 0 || m.GetPopTopLabel() != nil {
		unsup = append(unsup, "mpls")
	}
	if !nh.IP.IsValid() && nh.Interface == "" && len(unsup) == 0 {
		unsup = append(unsup, "neither ip-address nor interface")
	}
	nh.Unsupported = strings.Join(unsup, ", ")
	return nh
}

// validIfName is kt:ifname: 1..15 bytes of letters, digits, '_', '.'
// and '-', not starting with '.' or '-'.
func validIfName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// entryProto is the wire form of a RIB entry, for Get.
func entryProto(e *aft.Entry) *spb.AFTEntry {
	switch e.Kind {
	case aft.KindNextHop:
		m := &aftpb.Afts_NextHop{}
		if e.NH.IP.IsValid() {
			m.IpAddress = &wpb.StringValue{Value: e.NH.IP.String()}
		}
		if e.NH.Interface != "" {
			m.InterfaceRef = &aftpb.Afts_NextHop_InterfaceRef{Interface: &wpb.StringValue{Value: e.NH.Interface}}
		}
		return &spb.AFTEntry{Entry: &spb.AFTEntry_NextHop{NextHop: &aftpb.Afts_NextHopKey{Index: e.NH.Index, NextHop: m}}}
	case aft.KindNextHopGroup:
		g := &aftpb.Afts_NextHopGroup{}
		if e.NHG.Backup != 0 {
			g.BackupNextHopGroup = &wpb.UintValue{Value: e.NHG.Backup}
		}
		for _, m := range e.NHG.Members {
			nh := &aftpb.Afts_NextHopGroup_NextHop{}
			if m.Weight != 0 {
				nh.Weight = &wpb.UintValue{Value: m.Weight}
			}
			g.NextHop = append(g.NextHop, &aftpb.Afts_NextHopGroup_NextHopKey{Index: m.Index, NextHop: nh})
		}
		return &spb.AFTEntry{Entry: &spb.AFTEntry_NextHopGroup{NextHopGroup: &aftpb.Afts_NextHopGroupKey{Id: e.NHG.ID, NextHopGroup: g}}}
	case aft.KindIPv4:
		m := &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{Value: e.IP.NHG}}
		if len(e.IP.Metadata) > 0 {
			m.EntryMetadata = &wpb.BytesValue{Value: e.IP.Metadata}
		}
		return &spb.AFTEntry{Entry: &spb.AFTEntry_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: e.IP.Prefix.String(), Ipv4Entry: m}}}
	}
	m := &aftpb.Afts_Ipv6Entry{NextHopGroup: &wpb.UintValue{Value: e.IP.NHG}}
	if len(e.IP.Metadata) > 0 {
		m.EntryMetadata = &wpb.BytesValue{Value: e.IP.Metadata}
	}
	return &spb.AFTEntry{Entry: &spb.AFTEntry_Ipv6{Ipv6: &aftpb.Afts_Ipv6EntryKey{Prefix: e.IP.Prefix.String(), Ipv6Entry: m}}}
}
