package intent

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/gen/kedgetree"
)

// TestTranslateKeepsRoute checks that the compact route a translation
// keeps gives back the route routeOf reads from the entry, for entries
// setting every leaf a route takes (a gateway, a device, a metric, a
// table other than main, IPv6): a field routeOf learns to set that the
// compact form drops fails here.
func TestTranslateKeepsRoute(t *testing.T) {
	var ls []leaf
	for _, e := range []struct {
		prefix, nh, dev string
		table, metric   uint64
	}{
		{"10.1.0.0/24", "", "eth0", 254, 0},
		{"10.2.0.0/16", "192.0.2.1", "", 100, 20},
		{"2001:db8::/64", "2001:db8::1", "eth1", 254, 7},
	} {
		base := "/kedge/routes/route[prefix=" + e.prefix + "][table=" + strconv.FormatUint(e.table, 10) + "]/config/"
		ls = append(ls, leaf{base + "prefix", s(e.prefix)}, leaf{base + "table", u(e.table)})
		if e.nh != "" {
			ls = append(ls, leaf{base + "next-hop", s(e.nh)})
		}
		if e.dev != "" {
			ls = append(ls, leaf{base + "device", s(e.dev)})
		}
		if e.metric != 0 {
			ls = append(ls, leaf{base + "metric", u(e.metric)})
		}
	}
	tr := build(t, ls)
	n := 0
	for r := range kedgetree.Of(tr).Kedge().Routes().Route().All() {
		n++
		want, err := routeOf(r.Config())
		if err != nil {
			t.Fatal(err)
		}
		tr := translate(r.Config())
		if d := cmp.Diff(want, tr.route(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
			cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("route (-routeOf +translated):\n%s", d)
		}
		if o, table := tr.origin(), want.Table; o.Table != table {
			t.Errorf("origin table %d, want %d", o.Table, table)
		}
	}
	if n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}
