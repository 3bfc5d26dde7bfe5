package underlay

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Intent is the underlay as the tree's config describes it.
type Intent struct {
	Devices []Device // sorted by name
	VLANs   []VLAN   // sorted by id
	// CommitConfirm is the rollback duration of commit-confirmed pushes,
	// in seconds.
	CommitConfirm uint16
}

// DefaultCommitConfirm is the rollback duration when the tree sets none.
const DefaultCommitConfirm = 60

// Device is one managed device: its gNMI endpoint and how to reach it.
// The *File fields name files in the daemon's credentials directory.
type Device struct {
	Name            string
	Address         netip.Addr
	Port            uint16
	Role            string
	Vendor          string
	CommitConfirmed bool
	OnChange        bool
	ServerName      string
	CAFile          string
	CertFile        string
	KeyFile         string
	Username        string
	PasswordFile    string
}

// Endpoint returns the device's gNMI address (host:port).
func (d Device) Endpoint() string {
	return netip.AddrPortFrom(d.Address, d.Port).String()
}

// VLAN is one VLAN: its name and where it is on the devices.
type VLAN struct {
	ID            uint16         `json:"id"`
	Name          string         `json:"name,omitempty"`
	Members       []Member       `json:"members,omitempty"`       // sorted by device, port
	Subinterfaces []Subinterface `json:"subinterfaces,omitempty"` // sorted by device, port
}

// Member is a device port that carries the VLAN.
type Member struct {
	Device   string `json:"device"`
	Port     string `json:"port"`
	Untagged bool   `json:"untagged,omitempty"`
}

// Subinterface is a routed subinterface for the VLAN (index = VLAN id) on a
// device port.
type Subinterface struct {
	Device    string         `json:"device"`
	Port      string         `json:"port"`
	Addresses []netip.Prefix `json:"addresses,omitempty"`
}

// On returns the VLAN with only device's members and subinterfaces, and
// whether the VLAN is on the device at all.
func (v VLAN) On(device string) (VLAN, bool) {
	out := VLAN{ID: v.ID, Name: v.Name}
	for _, m := range v.Members {
		if m.Device == device {
			out.Members = append(out.Members, m)
		}
	}
	for _, s := range v.Subinterfaces {
		if s.Device == device {
			s.Addresses = slices.Clone(s.Addresses)
			out.Subinterfaces = append(out.Subinterfaces, s)
		}
	}
	return out, len(out.Members)+len(out.Subinterfaces) > 0
}

// Equal reports whether two VLANs say the same thing (both sorted).
func (v VLAN) Equal(o VLAN) bool {
	return v.ID == o.ID && v.Name == o.Name && slices.Equal(v.Members, o.Members) &&
		slices.EqualFunc(v.Subinterfaces, o.Subinterfaces, func(a, b Subinterface) bool {
			return a.Device == b.Device && a.Port == b.Port && slices.Equal(a.Addresses, b.Addresses)
		})
}

func (v *VLAN) sort() {
	slices.SortFunc(v.Members, func(a, b Member) int {
		return cmp.Or(strings.Compare(a.Device, b.Device), strings.Compare(a.Port, b.Port))
	})
	slices.SortFunc(v.Subinterfaces, func(a, b Subinterface) int {
		return cmp.Or(strings.Compare(a.Device, b.Device), strings.Compare(a.Port, b.Port))
	})
	for i := range v.Subinterfaces {
		slices.SortFunc(v.Subinterfaces[i].Addresses, comparePrefix)
		v.Subinterfaces[i].Addresses = slices.Compact(v.Subinterfaces[i].Addresses)
	}
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Device returns the named device.
func (in Intent) Device(name string) (Device, bool) {
	i, ok := slices.BinarySearchFunc(in.Devices, name, func(d Device, n string) int { return strings.Compare(d.Name, n) })
	if !ok {
		return Device{}, false
	}
	return in.Devices[i], true
}

// VLAN returns the VLAN with the id.
func (in Intent) VLAN(id uint16) (VLAN, bool) {
	i, ok := slices.BinarySearchFunc(in.VLANs, id, func(v VLAN, id uint16) int { return cmp.Compare(v.ID, id) })
	if !ok {
		return VLAN{}, false
	}
	return in.VLANs[i], true
}

// Proposal is a mutation's config: a request, by a proposer of a tier, to
// bring Devices (all when empty) to the intent of VLANs (all when empty).
type Proposal struct {
	ID          string
	Proposer    string
	Tier        string
	Description string
	Devices     []string
	VLANs       []uint16
	// Emergency marks a pre-approved emergency change: compiled when
	// proposed, then held until Execute.
	Emergency bool
	Execute   bool
}

// SameRequest reports whether two configs of a mutation ask for the same
// change; a compiled proposal whose request changes is compiled again.
// Execute and Description are not part of the request.
func (p Proposal) SameRequest(o Proposal) bool {
	return p.ID == o.ID && p.Proposer == o.Proposer && p.Tier == o.Tier &&
		slices.Equal(p.Devices, o.Devices) && slices.Equal(p.VLANs, o.VLANs) && p.Emergency == o.Emergency
}
