package server

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/cni/registry"
)

// Through the daemon: an operator may not declare a route of tier master
// (the reproduction at level 3), while the CNI plugin, root on
// the unix socket and so master by the built-in policy, still registers
// pods of any tier.
func TestDaemonTierLeaves(t *testing.T) {
	c := testConfig(t)
	d := startDaemon(t, c)
	cl := tlsClient(t, d, nil)
	if err := setLevel(cl, ctxAs(t, "master", masterPW), t, 3); err != nil {
		t.Fatal(err)
	}
	op := ctxAs(t, "op", operatorPW)
	_, err := cl.Set(op, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: gp(t, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config"),
		Val:  jsonIETF(`{"next-hop":"192.0.2.1","device":"eth0","class":"underlay","tier":"master"}`)}}})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "config/tier to master") {
		t.Fatalf("operator declaring tier master: %v", err)
	}
	_, err = cl.Get(op, &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]")}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("the refused route is in the tree: %v", err)
	}

	if os.Geteuid() != 0 {
		t.Skip("the CNI half needs root: the built-in policy maps uid 0 to master")
	}
	rc, err := registry.Dial(d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pod := registry.Pod{ContainerID: "c-tier", IfName: "eth0", Netns: "/run/netns/x", HostIfName: "veth-tier",
		Tier: "master", AllowedMode: "underlay", Addresses: []netip.Prefix{netip.MustParsePrefix("10.244.0.7/32")}}
	if err := rc.Register(ctx, pod); err != nil {
		t.Fatalf("CNI registering a master pod as root: %v", err)
	}
	if err := rc.Remove(ctx, pod.ContainerID, pod.IfName); err != nil {
		t.Fatalf("CNI removing it: %v", err)
	}
}
