package tests

import (
	"strings"
	"testing"
)

// TestGatewayRouteStateFollowsItsLink: a route given only a next hop (the
// kernel resolves its device, as for every gRIBI route) whose link goes
// down reads failed in state once the backend's grace has passed, and
// installed again after the link comes back, like a route over a named
// device (TestRoutesRepairedAfterOutsideChange). The link has no IPv6
// link-local address: before, the backend did not know such a route's
// device, so the IPv4 route, which the kernel drops silently, stayed
// "installed" for as long as the link stayed down (the IPv6 one's
// deletion notification made the daemon read every route).
func TestGatewayRouteStateFollowsItsLink(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		gw         rt
		want       string
	}{
		{"ipv4", "10.78.0.1/24", rt{prefix: "10.13.0.0/24", table: 254, nh: "10.78.0.2"}, "10.13.0.0/24 table 254 dev gwA via 10.78.0.2"},
		{"ipv6", "fd78::1/64", rt{prefix: "fd13::/64", table: 254, nh: "fd78::2"}, "fd13::/64 table 254 dev gwA via fd78::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNS(t, "gwlink")
			ipCmd(t, "-n", n.name, "link", "add", "gwA", "type", "veth", "peer", "name", "gwB")
			ipCmd(t, "-n", n.name, "link", "set", "gwA", "addrgenmode", "none")
			// The IPv6 address stays over down and up, as an IPv4 one does.
			if out := ipCmd(t, "netns", "exec", n.name, "sysctl", "-w", "net.ipv6.conf.gwA.keep_addr_on_down=1"); !strings.Contains(out, "= 1") {
				t.Fatalf("keep_addr_on_down: %s", out)
			}
			ipCmd(t, "-n", n.name, "addr", "add", tc.addr, "dev", "gwA", "nodad")
			ipCmd(t, "-n", n.name, "link", "set", "gwB", "up")
			ipCmd(t, "-n", n.name, "link", "set", "gwA", "up")
			c, _ := startKedge(t, daemonCfg(t, t.TempDir(), n.name))
			onDev := rt{prefix: "10.12.0.0/16", table: 254, dev: "rtA"}
			setRoutes(t, c, onDev, tc.gw)
			want := []string{"10.12.0.0/16 table 254 dev rtA", tc.want}
			waitRoutes(t, n, "the routes", want)
			waitState(t, c, onDev.path(), "installed", "")
			waitState(t, c, tc.gw.path(), "installed", "")

			ipCmd(t, "-n", n.name, "link", "set", "gwA", "down")
			waitRoutes(t, n, "the device route alone while the gateway's link is down", want[:1])
			eventually(t, tc.gw.path()+" failed while its gateway's link is down", func() bool {
				s, _ := entryState(t, c, tc.gw.path())
				return s == "failed"
			})
			waitState(t, c, onDev.path(), "installed", "")

			ipCmd(t, "-n", n.name, "link", "set", "gwA", "up")
			waitRoutes(t, n, "the routes after the link came back", want)
			waitState(t, c, tc.gw.path(), "installed", "")
		})
	}
}
