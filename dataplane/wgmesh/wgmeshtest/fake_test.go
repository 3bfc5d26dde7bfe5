package wgmeshtest

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
)

// The fake must hand back what it was given, unaffected by later mutation
// of the caller's slices, and report status from the last Config.
func TestFakeRecordsCopies(t *testing.T) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := wgmesh.Config{PrivateKey: k, Peers: []wgmesh.Peer{
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
