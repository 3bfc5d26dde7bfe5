package underlay

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// This file is the only one that reads the tree: it turns
// /kedge/underlay's config into plain values, through the generated
// typed readers. The schema has validated every value already (types,
// ranges, leafrefs), so reading cannot fail; leaves the schema gives
// defaults are defaulted here, because the tree stores only what was
// written.

// FromTree reads the intent and the mutation proposals (sorted by id). t is a
// snapshot of the tree; nothing returned refers to it.
func FromTree(t *tree.Tree) (Intent, []Proposal) {
	in := Intent{CommitConfirm: DefaultCommitConfirm}
	u := kedgetree.Of(t).Kedge().Underlay()
	if !u.Exists() {
		return in, nil
	}
	if v, ok := u.Config().CommitConfirmSeconds(); ok {
		in.CommitConfirm = v
	}
	for e := range u.Devices().Device().All() {
		if c := e.Config(); c.Exists() {
			in.Devices = append(in.Devices, deviceFrom(c))
		}
	}
	slices.SortFunc(in.Devices, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	for e := range u.Vlans().Vlan().All() {
		in.VLANs = append(in.VLANs, vlanFrom(e))
	}
	slices.SortFunc(in.VLANs, func(a, b VLAN) int { return cmp.Compare(a.ID, b.ID) })
	var props []Proposal
	for e := range u.Mutations().Mutation().All() {
		if c := e.Config(); c.Exists() {
			props = append(props, proposalFrom(c))
		}
	}
	slices.SortFunc(props, func(a, b Proposal) int { return strings.Compare(a.ID, b.ID) })
	return in, props
}

func deviceFrom(c kedgetree.Kedge_Underlay_Devices_Device_Config) Device {
	d := Device{Port: 9339, OnChange: true}
	d.Name, _ = c.Name()
	d.Role, _ = c.Role()
	d.Vendor, _ = c.Vendor()
	d.CommitConfirmed, _ = c.CommitConfirmed()
	d.ServerName, _ = c.ServerName()
	d.CAFile, _ = c.CaFile()
	d.CertFile, _ = c.CertFile()
	d.KeyFile, _ = c.KeyFile()
	d.Username, _ = c.Username()
	d.PasswordFile, _ = c.PasswordFile()
	if a, ok := c.Address(); ok {
		d.Address, _ = netip.ParseAddr(a) // the schema's pattern: always valid
	}
	if p, ok := c.Port(); ok {
		d.Port = p
	}
	if v, ok := c.OnChange(); ok {
		d.OnChange = v
	}
	return d
}

func vlanFrom(e kedgetree.Kedge_Underlay_Vlans_Vlan) VLAN {
	var v VLAN
	v.ID, _ = e.Id()
	v.Name, _ = e.Config().Name()
	for m := range e.Members().Member().All() {
		var mb Member
		mb.Device, _ = m.Device()
		mb.Port, _ = m.Port()
		mb.Untagged, _ = m.Config().Untagged()
		v.Members = append(v.Members, mb)
	}
	for s := range e.Subinterfaces().Subinterface().All() {
		var si Subinterface
		si.Device, _ = s.Device()
		si.Port, _ = s.Port()
		for _, a := range s.Config().Addresses() {
			if p, err := netip.ParsePrefix(a); err == nil {
				si.Addresses = append(si.Addresses, p)
			}
		}
		v.Subinterfaces = append(v.Subinterfaces, si)
	}
	v.sort()
	return v
}

func proposalFrom(c kedgetree.Kedge_Underlay_Mutations_Mutation_Config) Proposal {
	var p Proposal
	p.ID, _ = c.Id()
	p.Proposer, _ = c.Proposer()
	tier, _ := c.Tier()
	p.Tier = string(tier)
	p.Description, _ = c.Description()
	p.Emergency, _ = c.Emergency()
	p.Execute, _ = c.Execute()
	p.Devices = slices.Compact(slices.Sorted(slices.Values(c.Devices())))
	p.VLANs = slices.Compact(slices.Sorted(slices.Values(c.Vlans())))
	return p
}
