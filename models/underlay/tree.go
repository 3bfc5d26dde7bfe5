package underlay

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// This file is the only one that reads the tree: it turns
// /kedge/underlay's config into plain values. The schema has validated
// every value already (types, ranges, leafrefs), so reading cannot fail;
// leaves the schema gives defaults are defaulted here, because the tree
// stores only what was written.

// FromTree reads the intent and the mutation proposals (sorted by id). The
// caller holds the store's read lock; nothing returned refers to the tree.
func FromTree(t *tree.Tree) (Intent, []Proposal) {
	in := Intent{CommitConfirm: DefaultCommitConfirm}
	u := underlayNode(t)
	if u == nil {
		return in, nil
	}
	if c := u.Sub("config"); c != nil {
		if v := c.Get("commit-confirm-seconds"); v.IsSet() {
			in.CommitConfirm = uint16(v.UintVal())
		}
	}
	if ds := u.Sub("devices"); ds != nil {
		ds.Entries("device", func(e *tree.Inst) bool {
			if c := e.Sub("config"); c != nil {
				in.Devices = append(in.Devices, deviceFrom(c))
			}
			return true
		})
	}
	slices.SortFunc(in.Devices, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	if vs := u.Sub("vlans"); vs != nil {
		vs.Entries("vlan", func(e *tree.Inst) bool {
			in.VLANs = append(in.VLANs, vlanFrom(e))
			return true
		})
	}
	slices.SortFunc(in.VLANs, func(a, b VLAN) int { return cmp.Compare(a.ID, b.ID) })
	var props []Proposal
	if ms := u.Sub("mutations"); ms != nil {
		ms.Entries("mutation", func(e *tree.Inst) bool {
			if c := e.Sub("config"); c != nil {
				props = append(props, proposalFrom(c))
			}
			return true
		})
	}
	slices.SortFunc(props, func(a, b Proposal) int { return strings.Compare(a.ID, b.ID) })
	return in, props
}

func underlayNode(t *tree.Tree) *tree.Inst {
	k := t.Root().Sub("kedge")
	if k == nil {
		return nil
	}
	return k.Sub("underlay")
}

func deviceFrom(c *tree.Inst) Device {
	d := Device{
		Name:            c.Get("name").Str(),
		Port:            9339,
		Role:            c.Get("role").Str(),
		Vendor:          c.Get("vendor").Str(),
		CommitConfirmed: c.Get("commit-confirmed").BoolVal(),
		OnChange:        true,
		ServerName:      c.Get("server-name").Str(),
		CAFile:          c.Get("ca-file").Str(),
		CertFile:        c.Get("cert-file").Str(),
		KeyFile:         c.Get("key-file").Str(),
		Username:        c.Get("username").Str(),
		PasswordFile:    c.Get("password-file").Str(),
	}
	d.Address, _ = netip.ParseAddr(c.Get("address").Str()) // invalid stays the zero Addr
	if v := c.Get("port"); v.IsSet() {
		d.Port = uint16(v.UintVal())
	}
	if v := c.Get("on-change"); v.IsSet() {
		d.OnChange = v.BoolVal()
	}
	return d
}

func vlanFrom(e *tree.Inst) VLAN {
	v := VLAN{ID: uint16(e.Keys()[0].UintVal())}
	if c := e.Sub("config"); c != nil {
		v.Name = c.Get("name").Str()
	}
	if ms := e.Sub("members"); ms != nil {
		ms.Entries("member", func(m *tree.Inst) bool {
			k := m.Keys()
			mb := Member{Device: k[0].Str(), Port: k[1].Str()}
			if c := m.Sub("config"); c != nil {
				mb.Untagged = c.Get("untagged").BoolVal()
			}
			v.Members = append(v.Members, mb)
			return true
		})
	}
	if ss := e.Sub("subinterfaces"); ss != nil {
		ss.Entries("subinterface", func(s *tree.Inst) bool {
			k := s.Keys()
			si := Subinterface{Device: k[0].Str(), Port: k[1].Str()}
			if c := s.Sub("config"); c != nil {
				for _, a := range c.Get("addresses").Elems() {
					if p, err := netip.ParsePrefix(a.Str()); err == nil {
						si.Addresses = append(si.Addresses, p)
					}
				}
			}
			v.Subinterfaces = append(v.Subinterfaces, si)
			return true
		})
	}
	v.sort()
	return v
}

func proposalFrom(c *tree.Inst) Proposal {
	p := Proposal{
		ID:          c.Get("id").Str(),
		Proposer:    c.Get("proposer").Str(),
		Tier:        c.Get("tier").Str(),
		Description: c.Get("description").Str(),
		Emergency:   c.Get("emergency").BoolVal(),
		Execute:     c.Get("execute").BoolVal(),
	}
	for _, d := range c.Get("devices").Elems() {
		p.Devices = append(p.Devices, d.Str())
	}
	slices.Sort(p.Devices)
	p.Devices = slices.Compact(p.Devices)
	for _, v := range c.Get("vlans").Elems() {
		p.VLANs = append(p.VLANs, uint16(v.UintVal()))
	}
	slices.Sort(p.VLANs)
	p.VLANs = slices.Compact(p.VLANs)
	return p
}
