package intent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/models/accord"
)

// meshTree holds three peers: anchor (critical, two allowed IPs), lab
// (explicit keepalive 0, reconnect 7) and nas (claims anchor's /32 too).
func meshTree(t *testing.T, withConfig bool) []leaf {
	t.Helper()
	p := func(name, field string) string { return "/kedge/mesh/peers/peer[name=" + name + "]/config/" + field }
	ls := []leaf{
		{p("anchor", "name"), s("anchor")}, {p("anchor", "public-key"), s(key(1))}, {p("anchor", "critical"), b(true)},
		{p("anchor", "allowed-ips"), js(`["10.99.0.2/32","10.50.0.0/16"]`)},
		{p("lab", "name"), s("lab")}, {p("lab", "public-key"), s(key(2))}, {p("lab", "persistent-keepalive"), u(0)},
		{p("lab", "reconnect"), u(7)}, {p("lab", "allowed-ips"), js(`["10.99.0.3/32"]`)},
		{p("nas", "name"), s("nas")}, {p("nas", "public-key"), s(key(3))}, {p("nas", "allowed-ips"), js(`["10.99.0.2/32","10.60.1.0/24"]`)},
	}
	if withConfig {
		ls = append(ls, leaf{"/kedge/mesh/config/interface", s("kmesh7")})
	}
	return ls
}

func TestMeshPeersKeepaliveAndReconnect(t *testing.T) {
	tr := build(t, meshTree(t, false))
	a, _ := accord.Default(5)
	got := map[string][2]uint64{}
	crit := map[string]bool{}
	for _, p := range MeshPeers(tr, a) {
		got[p.Name] = [2]uint64{uint64(p.PersistentKeepalive / time.Second), p.Reconnect}
		crit[p.Name] = p.Critical
	}
	// lab's explicit 0 means "use the accord's", as the yang says.
	want := map[string][2]uint64{"anchor": {25, 0}, "lab": {25, 7}, "nas": {25, 0}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("keepalive, reconnect (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]bool{"anchor": true, "lab": false, "nas": false}, crit); d != "" {
		t.Errorf("critical (-want +got):\n%s", d)
	}
}

func TestMeshConfigured(t *testing.T) {
	if MeshConfigured(build(t, nil)) {
		t.Errorf("empty tree counts as a configured mesh")
	}
	if !MeshConfigured(build(t, meshTree(t, false))) {
		t.Errorf("peers alone do not count as a configured mesh")
	}
	if !MeshConfigured(build(t, []leaf{{"/kedge/mesh/config/listen-port", u(51999)}})) {
		t.Errorf("mesh config alone does not count as a configured mesh")
	}
}

// TestOverlayRoutesPerLevel: the routes intent carries a route to each
// peer's allowed IPs through the mesh interface, under the accord: all at
// 5..3, the critical peer's at 2, none at 1.
func TestOverlayRoutesPerLevel(t *testing.T) {
	tr := build(t, meshTree(t, true))
	r := func(p string) route.Route { return route.Route{Dst: netip.MustParsePrefix(p), Device: "kmesh7"} }
	all := []route.Route{r("10.50.0.0/16"), r("10.60.1.0/24"), r("10.99.0.2/32"), r("10.99.0.3/32")}
	want := map[uint8][]route.Route{
		5: all, 4: all, 3: all,
		2: {r("10.50.0.0/16"), r("10.99.0.2/32")},
		1: nil,
	}
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		set, err := Routes(tr, a)
		if err != nil {
			t.Fatal(err)
		}
		var got []route.Route
		for _, rt := range set.Config.Routes {
			if rt.Device == "kmesh7" {
				got = append(got, rt)
			}
		}
		if d := cmp.Diff(want[l], got, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
			cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
			t.Errorf("level %d overlay routes (-want +got):\n%s", l, d)
		}
	}
}

func TestStaleAfterPerLevel(t *testing.T) {
	got := map[uint8]time.Duration{}
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		got[l] = StaleAfter(a)
	}
	want := map[uint8]time.Duration{5: 180 * time.Second, 4: 140 * time.Second, 3: 140 * time.Second,
		2: 140 * time.Second, 1: 180 * time.Second}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("StaleAfter (-want +got):\n%s", d)
	}
}
