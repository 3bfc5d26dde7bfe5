package kernel_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type linkView struct {
	Kind, Parent, Alias, Mode string
	Up                        bool
	Addrs                     []string
}

func viewLink(t *testing.T, ns, name string) (linkView, bool) {
	t.Helper()
	h := nsHandle(t, ns)
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return linkView{}, false
		}
		t.Fatalf("find link %s: %v", name, err)
	}
	a := l.Attrs()
	v := linkView{Kind: l.Type(), Alias: a.Alias, Up: a.Flags&net.FlagUp != 0}
	if p, err := h.LinkByIndex(a.ParentIndex); err == nil {
		v.Parent = p.Attrs().Name
	}
	if m, ok := l.(*netlink.Macvlan); ok && m.Mode == netlink.MACVLAN_MODE_BRIDGE {
		v.Mode = "bridge"
	}
	as, err := h.AddrList(l, unix.AF_UNSPEC)
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	for _, x := range as {
		ip, _ := netip.AddrFromSlice(x.IP)
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		v.Addrs = append(v.Addrs, x.IPNet.String())
	}
	slices.Sort(v.Addrs)
	return v, true
}

func TestMacvlanUnderlay(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	name := "kdg" + randHex(4)

	vlan, err := b.VLANSupported()
	if err != nil {
		t.Fatalf("probe vlan: %v", err)
	}
	t.Logf("kernel 8021q support: %t", vlan)

	iface := route.Interface{Name: name, Parent: n.Dev, Kind: route.KindMacvlan, VLANID: 30,
		Addresses: []netip.Prefix{pfx("10.30.0.1/24"), pfx("fd30::1/64")}, Up: true}
	onIt := route.Route{Dst: pfx("10.31.0.0/24"), Gateway: addr("10.30.0.2"), Device: name}
	if err := b.Set(ctx, route.Config{Interfaces: []route.Interface{iface}, Routes: []route.Route{onIt}}); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, ok := viewLink(t, n.NS, name)
	wantLink := linkView{Kind: "macvlan", Parent: n.Dev, Alias: route.InterfaceAlias, Mode: "bridge", Up: true,
		Addrs: []string{"10.30.0.1/24", "fd30::1/64"}}
	if diff := cmp.Diff(wantLink, got); !ok || diff != "" {
		t.Errorf("created link (exists %t) (-want +got):\n%s", ok, diff)
	}
	checkKernel(t, n, []route.Route{onIt})
	if st := b.Status().Interfaces[0]; st.State != route.StateInstalled || st.Kind != route.KindMacvlan {
		t.Errorf("status %+v", st)
	}

	// Update: addresses and state change in place.
	iface.Addresses = []netip.Prefix{pfx("10.30.0.9/24")}
	iface.Up = false
	for range 2 { // second time is a no-op
		if err := b.Set(ctx, route.Config{Interfaces: []route.Interface{iface}}); err != nil {
			t.Fatalf("update: %v", err)
		}
	}
	got, _ = viewLink(t, n.NS, name)
	wantLink.Up, wantLink.Addrs = false, []string{"10.30.0.9/24"}
	if diff := cmp.Diff(wantLink, got); diff != "" {
		t.Errorf("updated link (-want +got):\n%s", diff)
	}

	// A link with the name that Kedge did not make is refused, not changed.
	other := "kdg" + randHex(4)
	ip(t, "-n", n.NS, "link", "add", other, "link", n.Dev, "type", "macvlan", "mode", "private")
	err = b.Set(ctx, route.Config{Interfaces: []route.Interface{iface, {Name: other, Parent: n.Dev, Kind: route.KindMacvlan}}})
	if !errors.Is(err, route.ErrNotOwned) {
		t.Errorf("set over a foreign link: got %v, want ErrNotOwned", err)
	}

	// Delete: Kedge's link goes, the foreign one stays.
	if err := b.Set(ctx, route.Config{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, ok := viewLink(t, n.NS, name); ok {
		t.Errorf("link %s still exists", name)
	}
	if _, ok := viewLink(t, n.NS, other); !ok {
		t.Errorf("foreign link %s was deleted", other)
	}
}

func TestAutoKindAndVLAN(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	vlan, err := b.VLANSupported()
	if err != nil {
		t.Fatalf("probe vlan: %v", err)
	}
	name := "kdg" + randHex(4)
	auto := route.Interface{Name: name, Parent: n.Dev, VLANID: 40, Up: true}
	if err := b.Set(context.Background(), route.Config{Interfaces: []route.Interface{auto}}); err != nil {
		t.Fatalf("set auto: %v", err)
	}
	got, _ := viewLink(t, n.NS, name)
	wantKind := map[bool]string{true: "vlan", false: "macvlan"}[vlan]
	if got.Kind != wantKind {
		t.Errorf("auto interface kind %q, want %q (8021q %t)", got.Kind, wantKind, vlan)
	}
	explicit := route.Interface{Name: "kdg" + randHex(4), Parent: n.Dev, Kind: route.KindVLAN, VLANID: 41, Up: true}
	err = b.Set(context.Background(), route.Config{Interfaces: []route.Interface{explicit}})
	if !vlan {
		if !errors.Is(err, route.ErrNotSupported) {
			t.Errorf("explicit vlan without 8021q: got %v, want ErrNotSupported", err)
		}
		needs.Lacks(t, needs.VLAN, "VLAN link kind unknown (EOPNOTSUPP): VLAN creation not testable; the macvlan fallback is checked above")
	}
	if err != nil {
		t.Fatalf("set vlan: %v", err)
	}
	if got, _ := viewLink(t, n.NS, explicit.Name); got.Kind != "vlan" || got.Parent != n.Dev {
		t.Errorf("vlan link %+v", got)
	}
}

// TestAddressMovesWithinItsSubnet: an interface's address replaced by
// another in the same IPv4 subnet ends with the new one, never with none.
// The new address joins as a secondary of the old (primary) one, and with
// the kernel's default (promote_secondaries off) deleting a primary
// deletes its secondaries too: the interface lost both until the next
// repair. The backend now has the kernel promote a secondary instead.
func TestAddressMovesWithinItsSubnet(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	name := "kdg" + randHex(4)
	iface := route.Interface{Name: name, Parent: n.Dev, Kind: route.KindMacvlan, Up: true,
		Addresses: []netip.Prefix{pfx("10.32.0.1/24"), pfx("10.33.0.1/24"), pfx("fd32::1/64")}}
	if err := b.Set(ctx, route.Config{Interfaces: []route.Interface{iface}}); err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, step := range [][]string{
		{"10.32.0.99/24", "10.33.0.1/24", "fd32::1/64"},   // the primary of 10.32.0.0/24 replaced
		{"10.32.0.99/24", "10.32.0.7/24", "10.33.0.1/24"}, // a secondary beside it, the IPv6 address gone
		{"10.32.0.7/24", "10.33.0.1/24"},                  // the primary again, its secondary kept
	} {
		iface.Addresses = iface.Addresses[:0]
		for _, a := range step {
			iface.Addresses = append(iface.Addresses, pfx(a))
		}
		if err := b.Set(ctx, route.Config{Interfaces: []route.Interface{iface}}); err != nil {
			t.Fatalf("set addresses %v: %v", step, err)
		}
		got, _ := viewLink(t, n.NS, name)
		want := slices.Sorted(slices.Values(step))
		if !slices.Equal(got.Addrs, want) {
			t.Errorf("addresses %v set: the kernel holds %v", want, got.Addrs)
		}
	}
}
