package intent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/models/accord"
)

func podLeaves(id, addrs, dev, mode, tier string) []leaf {
	base := "/kedge/pods/pod[container-id=" + id + "][ifname=eth0]/config/"
	ls := []leaf{{base + "container-id", s(id)}, {base + "ifname", s("eth0")}}
	if addrs != "" {
		ls = append(ls, leaf{base + "addresses", js(addrs)})
	}
	if dev != "" {
		ls = append(ls, leaf{base + "host-ifname", s(dev)})
	}
	if mode != "" {
		ls = append(ls, leaf{base + "allowed-mode", s(mode)})
	}
	if tier != "" {
		ls = append(ls, leaf{base + "tier", s(tier)})
	}
	return ls
}

func TestPodRoutes(t *testing.T) {
	var ls []leaf
	ls = append(ls, podLeaves("a", `["10.244.1.5/24","fd44::5/64"]`, "vethA", "", "")...)
	ls = append(ls, podLeaves("b", "", "vethB", "", "")...)             // no address yet
	ls = append(ls, podLeaves("c", `["10.244.1.7/24"]`, "", "", "")...) // no host end yet
	tr := build(t, ls)
	want := []route.Route{
		{Dst: netip.MustParsePrefix("10.244.1.5/32"), Device: "vethA", Scope: route.ScopeLink},
		{Dst: netip.MustParsePrefix("fd44::5/128"), Device: "vethA", Scope: route.ScopeLink},
	}
	if d := cmp.Diff(want, PodRoutes(tr), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("pod routes (-want +got):\n%s", d)
	}
	a, _ := accord.Default(5)
	set, err := Routes(tr, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Pods) != 1 || set.Pods[0].Key != (PodKey{"a", "eth0"}) {
		t.Errorf("pods with routes: %+v", set.Pods)
	}
	if len(set.PodsPending) != 2 {
		t.Errorf("pending pods: %+v, want b and c", set.PodsPending)
	}
	for i, o := range set.Origins {
		if o.Pod != (PodKey{"a", "eth0"}) {
			t.Errorf("route %s origin %+v", set.Config.Routes[i].Dst, o)
		}
	}
}

// TestPodRoutesPerLevel is the seed's CNI table for pods: mode and tier
// decide at level 3, endpoints at 2 and 1, overlay pods go at 1.
func TestPodRoutesPerLevel(t *testing.T) {
	var ls []leaf
	for _, p := range [][4]string{
		{"ov-op", "10.244.0.1/24", "overlay", "operator"},
		{"un-op", "10.244.0.2/24", "underlay", "operator"},
		{"un-so", "10.244.0.3/24", "underlay", "site-owner"},
		{"un-ma", "10.244.0.4/24", "underlay", "master"},
		{"default", "10.244.0.5/24", "", ""},              // overlay, operator
		{"spire", "10.50.0.7/24", "overlay", "operator"},  // a management endpoint
		{"prom", "10.51.0.9/24", "underlay", "master"},    // a monitoring endpoint
		{"prom-ov", "10.51.0.10/24", "overlay", "master"}, // monitoring endpoint, overlay mode
	} {
		ls = append(ls, podLeaves(p[0], `["`+p[1]+`"]`, "veth-"+p[0], p[2], p[3])...)
	}
	ep := func(name, kind, prefix string) []leaf {
		base := "/kedge/routes/endpoints/endpoint[name=" + name + "]/config/"
		return []leaf{{base + "name", s(name)}, {base + "kind", s(kind)}, {base + "prefix", s(prefix)}}
	}
	ls = append(ls, ep("spire", "management", "10.50.0.0/24")...)
	ls = append(ls, ep("prometheus", "monitoring", "10.51.0.0/28")...)
	tr := build(t, ls)
	all := []string{"10.50.0.7/32", "10.51.0.9/32", "10.51.0.10/32", "10.244.0.1/32", "10.244.0.2/32", "10.244.0.3/32", "10.244.0.4/32", "10.244.0.5/32"}
	want := map[uint8][]string{
		5: all,
		4: all,
		3: {"10.50.0.7/32", "10.51.0.9/32", "10.51.0.10/32", "10.244.0.1/32", "10.244.0.4/32", "10.244.0.5/32"},
		2: {"10.50.0.7/32", "10.51.0.9/32", "10.51.0.10/32"},
		1: {"10.51.0.9/32"},
	}
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		set, err := Routes(tr, a)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range set.Config.Routes {
			got = append(got, r.Dst.String())
			if r.Scope != route.ScopeLink || !strings.HasPrefix(r.Device, "veth-") {
				t.Errorf("level %d: pod route %v", l, r)
			}
		}
		if d := cmp.Diff(want[l], got); d != "" {
			t.Errorf("level %d pod routes (-want +got):\n%s", l, d)
		}
		if len(got)+len(set.Withheld) != len(all) {
			t.Errorf("level %d: %d kept + %d withheld, want %d", l, len(got), len(set.Withheld), len(all))
		}
		for _, w := range set.Withheld {
			if !w.Origin.IsPod() || !strings.HasPrefix(w.Reason, "posture level ") {
				t.Errorf("level %d: withheld %+v", l, w)
			}
		}
	}
}

// TestDefaultRouteReachesNoEndpoint: a default route overlaps every
// endpoint; keeping it at level 2 would keep all traffic.
func TestDefaultRouteReachesNoEndpoint(t *testing.T) {
	ls := routeLeaves("0.0.0.0/0", "underlay", "master")
	ls = append(ls, routeLeaves("10.9.0.0/24", "underlay", "operator")...)
	base := "/kedge/routes/endpoints/endpoint[name=spire]/config/"
	ls = append(ls, leaf{base + "name", s("spire")}, leaf{base + "kind", s("management")}, leaf{base + "prefix", s("10.9.0.5/32")})
	tr := build(t, ls)
	a, _ := accord.Default(2)
	set, _ := Routes(tr, a)
	if len(set.Config.Routes) != 1 || set.Config.Routes[0].Dst.String() != "10.9.0.0/24" {
		t.Errorf("level 2 routes %v, want only the route to the endpoint", set.Config.Routes)
	}
}

// TestDeescalationRestores: 5→3→2→1→5 ends with exactly the level-5 set,
// withheld entries having stayed in config throughout.
func TestDeescalationRestores(t *testing.T) {
	var ls []leaf
	for _, r := range [][3]string{{"10.1.0.0/24", "underlay", ""}, {"10.2.0.0/24", "overlay", ""}, {"10.3.0.0/24", "monitoring", ""}} {
		ls = append(ls, routeLeaves(r[0], r[1], r[2])...)
	}
	ls = append(ls, podLeaves("p", `["10.244.0.9/24"]`, "vethP", "underlay", "operator")...)
	tr := build(t, ls)
	at := func(l uint8) RouteSet {
		a, _ := accord.Default(l)
		set, err := Routes(tr, a)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	first := at(5)
	for _, l := range []uint8{3, 2, 1} {
		if s := at(l); len(s.Config.Routes) >= len(first.Config.Routes) {
			t.Errorf("level %d keeps %d routes, level 5 %d", l, len(s.Config.Routes), len(first.Config.Routes))
		}
	}
	if d := cmp.Diff(first, at(5), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("level 5 after 1 differs (-before +after):\n%s", d)
	}
}
