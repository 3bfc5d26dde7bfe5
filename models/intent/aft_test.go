package intent

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/internal/maproom"
	"github.com/guildhouse-co/kedge/models/accord"
)

// aftTree is a tree with gRIBI entries of two sessions (operator and
// master, both underlay) and a configured route sharing one prefix.
func aftTree(t *testing.T) []leaf {
	a := "/kedge/aft/"
	nhop := func(idx, key, val string) []leaf {
		p := a + "next-hops/next-hop[index=" + idx + "]/config/"
		return []leaf{{p + "index", s(idx)}, {p + key, s(val)}}
	}
	group := func(id string, members ...string) []leaf {
		p := a + "next-hop-groups/next-hop-group[id=" + id + "]/"
		ls := []leaf{{p + "config/id", s(id)}}
		for i, m := range members {
			mp := p + "next-hops/next-hop[index=" + m + "]/config/"
			ls = append(ls, leaf{mp + "index", s(m)})
			if i == 1 {
				ls = append(ls, leaf{mp + "weight", u(3)})
			}
		}
		return ls
	}
	sess := func(id, tier string) []leaf {
		p := a + "sessions/session[id=" + id + "]/config/"
		return []leaf{{p + "id", s(id)}, {p + "tier", s(tier)}, {p + "class", s("underlay")}}
	}
	v4 := func(prefix, nhg, session string) []leaf {
		p := a + "ipv4-entries/ipv4-entry[prefix=" + prefix + "]/config/"
		return []leaf{{p + "prefix", s(prefix)}, {p + "next-hop-group", s(nhg)}, {p + "session", s(session)}}
	}
	var ls []leaf
	for _, part := range [][]leaf{
		nhop("1", "ip-address", "192.0.2.1"), nhop("2", "interface", "eth1"), nhop("3", "unsupported", "mac-address"),
		group("10", "1"), group("11", "1", "2"), group("12", "3"),
		sess("op", "operator"), sess("ma", "master"),
		v4("198.51.100.0/24", "10", "op"), v4("198.51.101.0/24", "11", "ma"), v4("198.51.102.0/24", "12", "ma"),
		v4("198.51.103.0/24", "99", "ma"), v4("10.9.0.0/16", "10", "ma"),
		routeLeaves("10.9.0.0/16", "underlay", "master"),
	} {
		ls = append(ls, part...)
	}
	return ls
}

// TestAFTRoutes: gRIBI entries become routes through their group (one
// next hop: a plain route; several: weighted multipath), are judged by
// the posture level by their session's class and tier, fail when their
// group cannot be programmed, and lose to a configured route with their
// prefix.
func TestAFTRoutes(t *testing.T) {
	tr := build(t, aftTree(t))
	at := func(level uint8) RouteSet {
		a, err := accord.Default(level)
		if err != nil {
			t.Fatal(err)
		}
		set, err := Routes(tr, a)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	routes := func(set RouteSet) []string {
		var out []string
		for i, r := range set.Config.Routes {
			if set.Origins[i].IsAFT() {
				out = append(out, r.String())
			}
		}
		return out
	}
	states := func(set RouteSet) map[string]string {
		out := map[string]string{}
		for _, st := range set.AFT {
			k := st.Key.Prefix
			if k == "" {
				k = string(rune('0'+st.Key.Kind)) + ":" + string(rune('0'+st.Key.ID%10))
			}
			out[k] = st.Status + " " + st.Reason
		}
		for _, w := range set.Withheld {
			if w.Origin.IsAFT() {
				out[w.Origin.AFT.Prefix] = "withheld " + w.Reason
			}
		}
		return out
	}

	l5 := at(5)
	want := []string{
		"198.51.100.0/24 via 192.0.2.1 table 254 metric 0 scope global",
		"198.51.101.0/24 nexthop via 192.0.2.1 weight 1 nexthop dev eth1 weight 3 table 254 metric 0 scope global",
	}
	if d := cmp.Diff(want, routes(l5)); d != "" {
		t.Errorf("routes at level 5 (-want +got):\n%s", d)
	}
	st := states(l5)
	for k, wantPart := range map[string]string{
		"198.51.102.0/24": "failed next-hop-group 12: next hop 3: unsupported next hop: mac-address",
		"198.51.103.0/24": "failed next-hop-group 99 does not exist",
		"10.9.0.0/16":     "overridden /kedge/routes/route[prefix=10.9.0.0/16][table=254] holds the same prefix",
		"4:3":             "failed unsupported next hop: mac-address",
		"4:1":             "installed ",
		"3:1":             "installed ", // group 11
	} {
		if !strings.HasPrefix(st[k], wantPart) {
			t.Errorf("state of %s = %q, want %q...", k, st[k], wantPart)
		}
	}

	// Level 3 withholds underlay routes below master: the operator's.
	l3 := states(at(3))
	if got := l3["198.51.100.0/24"]; !strings.HasPrefix(got, "withheld posture level 3 (withhold-underlay-below-master): underlay route of tier operator") {
		t.Errorf("operator's underlay entry at level 3: %q", got)
	}
	if _, ok := l3["198.51.101.0/24"]; ok {
		t.Errorf("master's entry at level 3 has a state %q: it should be a route", l3["198.51.101.0/24"])
	}
	// Level 2 keeps only critical routes: neither.
	l2 := at(2)
	if r := routes(l2); len(r) != 0 {
		t.Errorf("gRIBI routes at level 2: %v, want none", r)
	}
	if got := states(l2)["198.51.101.0/24"]; !strings.HasPrefix(got, "withheld posture level 2") {
		t.Errorf("master's underlay entry at level 2: %q", got)
	}
}

// TestAFTCacheReserve: the room a bulk batch makes in the AFT cache keeps
// every live entry, and the cache answers as before.
func TestAFTCacheReserve(t *testing.T) {
	tr := build(t, aftTree(t))
	a, err := accord.Default(5)
	if err != nil {
		t.Fatal(err)
	}
	var c RouteCache
	before, err := c.Routes(tr, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(c.aft.byID)
	if len(want) == 0 {
		t.Fatal("no entries cached")
	}
	c.aft.reserve(maproom.Min)
	if !maps.Equal(c.aft.byID, want) {
		t.Fatalf("after reserve: %d entries, want the %d cached before", len(c.aft.byID), len(want))
	}
	wantRoutes := slices.Clone(before.Config.Routes)
	after, err := c.Routes(tr, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantRoutes, after.Config.Routes); d != "" {
		t.Errorf("routes after reserve differ (-before +after):\n%s", d)
	}
}

// TestAFTEntryMarkedTwiceReadOnce: an IP entry two commits changed
// before one intent is marked twice and read once: one change, one
// route put, the one of its last write.
func TestAFTEntryMarkedTwiceReadOnce(t *testing.T) {
	ls := aftBase()
	ls = append(ls, aftLeaves("10.60.0.1/32", 1, "op")...)
	tr := build(t, ls)
	acc, _ := accord.Default(5)
	var c RouteCache
	if _, err := c.Routes(tr, acc, 0); err != nil {
		t.Fatal(err)
	}
	for seq, nhg := range []uint64{2, 1} {
		var ops []op
		for _, l := range aftLeaves("10.60.0.2/32", 1, "op") {
			ops = append(ops, op{path: l.path, val: l.val})
		}
		ops = append(ops, op{path: aftEntry("10.60.0.1/32") + "/config/next-hop-group", val: u(nhg)})
		changes, ok := applyOps(t, tr, ops)
		if !ok {
			t.Fatal("commit refused")
		}
		c.Observe(uint64(seq+1), false, changes)
	}
	if got := len(c.aft.marked); got != 3 {
		t.Fatalf("%d marks, want 3 (10.60.0.1/32 twice)", got)
	}
	set, err := c.Changes(tr, acc, 2)
	if err != nil || set.Delta == nil {
		t.Fatalf("no change set (err %v)", err)
	}
	var dsts []string
	for _, r := range set.Delta.Patch.Put {
		dsts = append(dsts, r.Dst.String())
	}
	if d := cmp.Diff([]string{"10.60.0.1/32", "10.60.0.2/32"}, dsts); d != "" {
		t.Errorf("puts (-want +got):\n%s", d)
	}
}
