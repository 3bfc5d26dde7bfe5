package wgdevice

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/tests/needs"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// fakeWG is an in-memory device that rejects any call touching one key.
type fakeWG struct {
	dev    wgtypes.Device
	reject wgtypes.Key
	calls  int
}

func (f *fakeWG) Device(string) (*wgtypes.Device, error) { d := f.dev; return &d, nil }

func (f *fakeWG) ConfigureDevice(_ string, c wgtypes.Config) error {
	f.calls++
	for _, p := range c.Peers {
		if p.PublicKey == f.reject {
			return errors.New("invalid argument")
		}
	}
	if c.PrivateKey != nil {
		f.dev.PrivateKey = *c.PrivateKey
	}
	for _, p := range c.Peers {
		if p.Remove {
			continue
		}
		f.dev.Peers = append(f.dev.Peers, wgtypes.Peer{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs})
	}
	return nil
}

type noLinks struct{}

func (noLinks) Sync(string, int, []netip.Prefix) (bool, error) { return false, nil }
func (noLinks) Close()                                         {}

// When the device rejects the batch, each peer is retried alone: the peer
// the device rejects fails with its name, the others are applied.
func TestDeviceRejectionFailsAlone(t *testing.T) {
	needs.Root(t, "New opens a netlink socket")
	bad := mustKey(t).PublicKey()
	f := &fakeWG{reject: bad}
	b, err := New(Options{WireGuard: f, InitiatorDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	b.links.Close()
	b.links = noLinks{}
	t.Cleanup(func() { b.Close() })
	cfg := wgmesh.Config{Interface: "kwfake0", PrivateKey: wgmesh.Key(mustKey(t)), Peers: []wgmesh.Peer{
		{Name: "ok1", PublicKey: mustKey(t).PublicKey().String(), AllowedIPs: pfx("10.0.0.1/32")},
		{Name: "rejected", PublicKey: bad.String(), AllowedIPs: pfx("10.0.0.2/32")},
		{Name: "ok2", PublicKey: mustKey(t).PublicKey().String(), AllowedIPs: pfx("10.0.0.3/32")},
	}}
	err = b.Set(context.Background(), cfg)
	var pe *wgmesh.PeerError
	if !errors.As(err, &pe) || pe.Name != "rejected" || !errors.Is(err, wgmesh.ErrDeviceRejected) {
		t.Fatalf("Set = %v, want a PeerError for \"rejected\"", err)
	}
	if len(f.dev.Peers) != 2 {
		t.Errorf("device has %d peers, want the 2 good ones", len(f.dev.Peers))
	}
	// batch + device keys + 3 single peers
	if f.calls != 5 {
		t.Errorf("%d ConfigureDevice calls, want 5 (batch, device, one per peer)", f.calls)
	}
}
