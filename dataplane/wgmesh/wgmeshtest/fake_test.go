package wgmeshtest

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
)

// The fake must hand back what it was given, unaffected by later mutation
// of the caller's slices, and report status from the last Config.
func TestFakeRecordsCopies(t *testing.T) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := wgmesh.Config{PrivateKey: wgmesh.Key(k), Peers: []wgmesh.Peer{
		{Name: "b", PublicKey: "kb", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}},
		{Name: "a", PublicKey: "ka"},
	}}
	f := New()
	if err := f.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Peers[0].AllowedIPs[0] = netip.MustParsePrefix("10.9.9.9/32")
	got, _ := f.Last()
	if want := netip.MustParsePrefix("10.0.0.2/32"); got.Peers[0].AllowedIPs[0] != want {
		t.Errorf("recorded allowed ip = %v, want %v (caller mutation leaked)", got.Peers[0].AllowedIPs[0], want)
	}
	f.SetPeerState("b", wgmesh.StatePostureDown)
	ps, err := f.Peers()
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, p := range ps {
		states = append(states, p.Name+"="+string(p.State))
	}
	if diff := cmp.Diff([]string{"a=up", "b=posture-down"}, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	boom := errors.New("boom")
	f.FailWith(func(wgmesh.Config) error { return boom })
	if err := f.Set(context.Background(), wgmesh.Config{}); !errors.Is(err, boom) {
		t.Errorf("Set error = %v, want boom", err)
	}
	if n := len(f.Calls()); n != 2 {
		t.Errorf("recorded %d calls, want 2", n)
	}
}

// The fake and the real backend both fit the contract.
var (
	_ wgmesh.Backend = (*Fake)(nil)
	_ wgmesh.Backend = (*wgdevice.Backend)(nil)
)

func TestFakePeerForAddr(t *testing.T) {
	f := New()
	if _, ok := f.PeerForAddr(netip.MustParseAddr("10.0.0.2")); ok {
		t.Error("a peer before any Set")
	}
	if err := f.Set(context.Background(), wgmesh.Config{Peers: []wgmesh.Peer{
		{Name: "wide", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}},
		{Name: "host", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}},
	}}); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"10.0.0.2": "host", "10.0.0.3": "wide", "10.9.0.1": ""} {
		got, ok := f.PeerForAddr(netip.MustParseAddr(addr))
		if got != want || ok != (want != "") {
			t.Errorf("PeerForAddr(%s) = %q, %v; want %q", addr, got, ok, want)
		}
	}
}
