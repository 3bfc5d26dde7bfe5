package registry_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/cni/internal/testdaemon"
	"github.com/guildhouse-co/kedge/cni/registry"
	"github.com/guildhouse-co/kedge/models/rules"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRegisterListRemove(t *testing.T) {
	d := testdaemon.Start(t, true)
	c, err := registry.Dial(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if pods, err := c.Pods(ctx(t)); err != nil || len(pods) != 0 {
		t.Fatalf("empty registry: %v %v", pods, err)
	}
	if pools, err := c.Pools(ctx(t)); err != nil || len(pools) != 0 {
		t.Fatalf("no pools: %v %v", pools, err)
	}
	want := registry.Pod{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/x", Namespace: "default", Name: "web",
		HostIfName: "kd0123", Tier: "operator", AllowedMode: "underlay",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32")}}
	if err := c.Register(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	// Registering again is a no-op, not an error (ADD retried by the runtime).
	if err := c.Register(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	pods, err := c.Pods(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Pod{want}, pods, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("pods (-want +got):\n%s", diff)
	}
	addrs, err := c.Addresses(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs := []registry.Pod{{ContainerID: "c1", IfName: "eth0", Addresses: want.Addresses}}
	if diff := cmp.Diff(wantAddrs, addrs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("addresses (-want +got):\n%s", diff)
	}
	// A second attachment claiming the same address loses as a whole.
	dup := want
	dup.ContainerID = "c2"
	if err := c.Register(ctx(t), dup); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("duplicate address: err = %v, want ErrConflict", err)
	}
	// The plugin keeps its own copy of the rule's reason (it links none of
	// the daemon's packages); the conflict above was recognised by it, and
	// the two must stay equal.
	if registry.ReasonAddressInUse != rules.ReasonPodAddressInUse {
		t.Errorf("registry reason %q, rule reason %q", registry.ReasonAddressInUse, rules.ReasonPodAddressInUse)
	}
	if err := c.Remove(ctx(t), "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx(t), "c1", "eth0"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if pods, err := c.Pods(ctx(t)); err != nil || len(pods) != 0 {
		t.Fatalf("after remove: %v %v", pods, err)
	}
}

func TestPools(t *testing.T) {
	d := testdaemon.Start(t, true)
	c, err := registry.Dial(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GNMI().Set(ctx(t), &gpb.SetRequest{Update: []*gpb.Update{{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "kedge"}, {Name: "pods"}, {Name: "config"}, {Name: "ipam-pools"}}},
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`["10.9.0.0/24","fd00:9::/64"]`)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pools, err := c.Pools(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(pools); got != 2 || pools[0].String() != "10.9.0.0/24" || pools[1].String() != "fd00:9::/64" {
		t.Fatalf("pools %v", pools)
	}
}

func TestUnavailable(t *testing.T) {
	if _, err := registry.Dial(filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("missing socket: %v", err)
	}
	d := testdaemon.Start(t, true)
	c, err := registry.Dial(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.Stop()
	if err := c.Ping(ctx(t)); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("stopped daemon: %v", err)
	}
}
