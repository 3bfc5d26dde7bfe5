package treegen_test

import (
	"fmt"
	"slices"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	kyang "github.com/guildhouse-co/kedge/yang"
)

// newTree returns a tree over the embedded schema holding config (JSON_IETF
// at /) and state (one state write per path and value).
func newTree(t testing.TB, config string, state map[string]*gpb.TypedValue) *tree.Tree {
	t.Helper()
	s, err := kyang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(s)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Update(nil, &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(config)}}); err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := tx.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	tx.Commit()
	if len(state) > 0 {
		tx, err := tr.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		for p, v := range state {
			elems, err := tree.ParsePath(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Update(elems, v); err != nil {
				t.Fatalf("state %s: %v", p, err)
			}
		}
		tx.Commit()
	}
	return tr
}

const sampleConfig = `{"kedge:kedge": {
  "posture": {"config": {"level": 3}},
  "mesh": {"config": {"interface": "kedge0", "addresses": ["10.99.0.1/32", "fd00::1/128"]},
           "peers": {"peer": [{"name": "b", "config": {"name": "b", "public-key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "critical": true}}]}},
  "routes": {"route": [
    {"prefix": "10.1.0.0/16", "table": 254, "config": {"prefix": "10.1.0.0/16", "table": 254, "device": "eth0", "class": "underlay", "tier": "master"}},
    {"prefix": "10.2.0.0/16", "table": 100, "config": {"prefix": "10.2.0.0/16", "table": 100, "metric": 7}}
  ]}
}}`

func TestReaders(t *testing.T) {
	str := func(s string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}} }
	tr := newTree(t, sampleConfig, map[string]*gpb.TypedValue{
		"/kedge/routes/route[prefix=10.1.0.0/16][table=254]/state/status": str("withheld"),
		"/kedge/routes/route[prefix=10.1.0.0/16][table=254]/state/reason": str("posture"),
	})
	k := kedgetree.Of(tr).Kedge()

	if lvl, ok := k.Posture().Config().Level(); !ok || lvl != 3 {
		t.Errorf("posture level = %d, %v; want 3, true", lvl, ok)
	}
	if lvl, ok := k.Posture().State().EffectiveLevel(); ok || lvl != 0 {
		t.Errorf("unset effective level = %d, %v; want 0, false", lvl, ok)
	}
	if k.System().Exists() || k.System().Config().Exists() {
		t.Error("absent /kedge/system reads as existing")
	}
	if name, ok := k.System().Config().NodeName(); ok || name != "" {
		t.Errorf("leaf under an absent container = %q, %v", name, ok)
	}
	if got := k.Mesh().Config().Addresses(); !slices.Equal(got, []string{"10.99.0.1/32", "fd00::1/128"}) {
		t.Errorf("leaf-list = %v", got)
	}
	if got := k.Mesh().State().Addresses(); got != nil {
		t.Errorf("unset leaf-list = %v, want nil", got)
	}

	peers := k.Mesh().Peers().Peer()
	if peers.Len() != 1 {
		t.Fatalf("peers = %d", peers.Len())
	}
	p, ok := peers.Get("b")
	if !ok {
		t.Fatal("peer b not found")
	}
	if c, ok := p.Config().Critical(); !ok || !c {
		t.Errorf("critical = %v, %v", c, ok)
	}
	if _, ok := peers.Get("nobody"); ok {
		t.Error("Get of an absent peer found one")
	}

	routes := k.Routes().Route()
	var got []string
	for r := range routes.All() {
		pfx, _ := r.Prefix()
		table, _ := r.Table()
		class, hasClass := r.Config().Class()
		metric, _ := r.Config().Metric()
		got = append(got, fmt.Sprintf("%s/%d class=%s(%v) metric=%d", pfx, table, class, hasClass, metric))
	}
	slices.Sort(got)
	want := []string{"10.1.0.0/16/254 class=underlay(true) metric=0", "10.2.0.0/16/100 class=(false) metric=7"}
	if !slices.Equal(got, want) {
		t.Errorf("routes = %q, want %q", got, want)
	}
	r, ok := routes.Get("10.1.0.0/16", 254)
	if !ok {
		t.Fatal("route 10.1.0.0/16 table 254 not found")
	}
	if st, ok := r.State().Status(); !ok || st != kedgepath.RouteStatusWithheld {
		t.Errorf("status = %q, %v", st, ok)
	}
	if tier, _ := r.Config().Tier(); tier != kedgepath.TierMaster {
		t.Errorf("tier = %q", tier)
	}
	if _, ok := routes.Get("10.1.0.0/16", 100); ok {
		t.Error("Get with the wrong table found a route")
	}
	// Breaking out of All stops the walk.
	n := 0
	for range routes.All() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("All yielded %d after break", n)
	}

	// As wraps an instance of its own node only.
	if x, ok := kedgetree.AsKedge_Routes_Route(r.Inst()); !ok || x.Inst() != r.Inst() {
		t.Error("As did not wrap a route entry")
	}
	if _, ok := kedgetree.AsKedge_Routes_Route(r.Config().Inst()); ok {
		t.Error("As wrapped a route's config container as a route")
	}
	if _, ok := kedgetree.AsKedge_Routes_Route(nil); ok {
		t.Error("As wrapped nil")
	}
	if n := kedgetree.Node(kedgepath.Root().Kedge().Routes().RouteAny().SchemaPath()); n == nil || n != r.Inst().Schema() {
		t.Errorf("Node(route) = %v", n)
	}
}

// TestOfOtherSchema: reading a tree over another schema with this
// package's nodes would read wrong leaves; Of refuses.
func TestOfOtherSchema(t *testing.T) {
	other, err := tree.LoadModules([]string{"../"}, []string{"../kedge.yang", "../kedge-types.yang"}, []string{"kedge"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Of accepted a tree over another schema")
		}
	}()
	kedgetree.Of(tree.New(other))
}
