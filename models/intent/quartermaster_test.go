package intent

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/models/accord"
)

// The Quartermaster endpoint stays reachable at every level (the notary
// flushes every record to it at level 1); a management endpoint of any
// other service does not survive level 1.
func TestQuartermasterRouteKeptAtEveryLevel(t *testing.T) {
	var ls []leaf
	for _, r := range [][3]string{
		{"10.20.0.0/24", "underlay", "operator"}, // reaches Quartermaster
		{"10.21.0.0/24", "underlay", "operator"}, // reaches SPIRE
		{"10.22.0.0/24", "underlay", "operator"}, // reaches nothing
	} {
		ls = append(ls, routeLeaves(r[0], r[1], r[2])...)
	}
	for _, ep := range [][3]string{{"qm", "10.20.0.9/32", accord.ServiceQuartermaster}, {"spire", "10.21.0.9/32", "spire"}} {
		base := "/kedge/routes/endpoints/endpoint[name=" + ep[0] + "]/config/"
		ls = append(ls, leaf{base + "name", s(ep[0])}, leaf{base + "kind", s("management")},
			leaf{base + "prefix", s(ep[1])}, leaf{base + "service", s(ep[2])})
	}
	tr := build(t, ls)
	want := map[uint8][]string{
		5: {"10.20.0.0/24", "10.21.0.0/24", "10.22.0.0/24"},
		4: {"10.20.0.0/24", "10.21.0.0/24", "10.22.0.0/24"},
		3: {"10.20.0.0/24"}, // underlay below master is withheld, except toward Quartermaster
		2: {"10.20.0.0/24", "10.21.0.0/24"},
		1: {"10.20.0.0/24"},
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
		}
		if d := cmp.Diff(want[l], got); d != "" {
			t.Errorf("level %d routes (-want +got):\n%s", l, d)
		}
	}
}
