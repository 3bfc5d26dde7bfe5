package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
)

// setInterfaces creates or updates the desired underlay interfaces. It
// returns their status, the names to keep, the refreshed link list and the
// errors. A wrong-kind or wrong-parent interface of ours is deleted and made
// again: the kernel cannot change those in place.
func (b *Backend) setInterfaces(ifs []route.Interface, links []rtnl.Link) ([]route.InterfaceStatus, map[string]bool, []rtnl.Link, []error) {
	st := make([]route.InterfaceStatus, len(ifs))
	keep := make(map[string]bool, len(ifs))
	count := make(map[string]int, len(ifs))
	for _, i := range ifs {
		count[i.Name]++
		keep[i.Name] = true
	}
	byName := make(map[string]rtnl.Link, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	changed := false
	var errs []error
	for i, want := range ifs {
		st[i] = route.InterfaceStatus{Name: want.Name, Kind: want.Kind, State: route.StateInstalled}
		var err error
		if count[want.Name] > 1 {
			err = route.ErrDuplicate
		} else {
			var made bool
			st[i].Kind, made, err = b.setInterface(want, byName)
			changed = changed || made
		}
		if err != nil {
			st[i].State, st[i].Err = route.StateFailed, &route.InterfaceError{Name: want.Name, Err: err}
			errs = append(errs, st[i].Err)
		}
	}
	if changed {
		fresh, err := b.conn.Links()
		if err != nil {
			errs = append(errs, fmt.Errorf("list links: %w", err))
		} else {
			links = fresh
		}
	}
	return st, keep, links, errs
}

func checkInterface(want route.Interface) error {
	switch {
	case want.Name == "" || len(want.Name) > 15:
		return fmt.Errorf("%w: name must be 1..15 bytes", route.ErrInvalid)
	case want.Parent == "":
		return fmt.Errorf("%w: no parent", route.ErrInvalid)
	case want.Kind > route.KindMacvlan:
		return fmt.Errorf("%w: kind %d", route.ErrInvalid, want.Kind)
	case want.Kind != route.KindMacvlan && (want.VLANID == 0 || want.VLANID > 4094):
		return fmt.Errorf("%w: vlan id must be 1..4094", route.ErrInvalid)
	}
	return nil
}

// setInterface makes one interface match; it returns the kind made and
// whether a link was created.
func (b *Backend) setInterface(want route.Interface, byName map[string]rtnl.Link) (route.Kind, bool, error) {
	if err := checkInterface(want); err != nil {
		return want.Kind, false, err
	}
	parent, ok := byName[want.Parent]
	if !ok {
		return want.Kind, false, fmt.Errorf("%w %q (parent)", route.ErrUnknownDevice, want.Parent)
	}
	kind := want.Kind
	if kind != route.KindMacvlan {
		vlan, err := b.vlanSupported()
		if err != nil {
			return kind, false, err
		}
		switch {
		case vlan:
			kind = route.KindVLAN
		case kind == route.KindVLAN:
			return kind, false, fmt.Errorf("make vlan: %w (8021q)", route.ErrNotSupported)
		default:
			kind = route.KindMacvlan
		}
	}
	made := false
	cur, exists := byName[want.Name]
	if exists && cur.Alias != route.InterfaceAlias {
		return kind, false, route.ErrNotOwned
	}
	if exists && !sameLink(cur, kind, parent.Index, want.VLANID) {
		if err := b.conn.DelLink(cur.Index); err != nil {
			return kind, false, err
		}
		exists = false
	}
	if !exists {
		var err error
		if kind == route.KindVLAN {
			err = b.conn.AddVLAN(want.Name, parent.Index, int(want.VLANID), route.InterfaceAlias)
		} else {
			err = b.conn.AddMacvlan(want.Name, parent.Index, route.InterfaceAlias)
		}
		if err != nil {
			return kind, false, err
		}
		made = true
		links, err := b.conn.Links()
		if err != nil {
			return kind, made, fmt.Errorf("list links: %w", err)
		}
		i := slices.IndexFunc(links, func(l rtnl.Link) bool { return l.Name == want.Name })
		if i < 0 {
			return kind, made, fmt.Errorf("find new link: %w", route.ErrUnknownDevice)
		}
		cur = links[i]
		b.log.Info("made underlay interface", "name", want.Name, "kind", kind, "parent", want.Parent)
	}
	if err := b.setAddrs(cur.Index, want.Addresses); err != nil {
		return kind, made, err
	}
	if cur.Up != want.Up {
		if err := b.conn.SetUp(cur.Index, want.Up); err != nil {
			return kind, made, err
		}
	}
	return kind, made, nil
}

func sameLink(l rtnl.Link, kind route.Kind, parent int, vlanID uint16) bool {
	if l.Parent != parent {
		return false
	}
	if kind == route.KindVLAN {
		return l.Kind == "vlan" && l.VLANID == int(vlanID)
	}
	return l.Kind == "macvlan" && l.Mode == "bridge"
}

// setAddrs adds missing addresses before it removes extra ones, with the
// link promoting a secondary IPv4 address when its primary goes.
func (b *Backend) setAddrs(index int, want []netip.Prefix) error {
	have, err := b.conn.Addrs(index)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range want {
		if !slices.Contains(have, p) {
			if err := b.conn.AddAddr(index, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	promoted := false
	for _, p := range have {
		if slices.Contains(want, p) {
			continue
		}
		if p.Addr().Is4() && !promoted {
			// Deleting a primary IPv4 address deletes its secondaries
			// unless the link promotes one: an address moving within its
			// subnet (the new one a secondary of the old) went with it.
			if err := b.conn.PromoteSecondaries(index); err != nil {
				errs = append(errs, err)
				continue
			}
			promoted = true
		}
		if err := b.conn.DelAddr(index, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteStaleInterfaces deletes Kedge's interfaces that are not wanted.
func (b *Backend) deleteStaleInterfaces(links []rtnl.Link, keep map[string]bool) []error {
	var errs []error
	for _, l := range links {
		if l.Alias != route.InterfaceAlias || keep[l.Name] || (b.held != nil && b.held.links[l.Name]) {
			continue
		}
		if err := b.conn.DelLink(l.Index); err != nil {
			errs = append(errs, &route.InterfaceError{Name: l.Name, Err: err})
			continue
		}
		b.log.Info("deleted underlay interface", "name", l.Name)
	}
	return errs
}
