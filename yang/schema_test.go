package yang

import (
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// TestSchemaCompiles proves the tree store accepts every node and type
// of Kedge's modules, and spot-checks what the store relies on.
func TestSchemaCompiles(t *testing.T) {
	s, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Modules) != 2 || s.Modules[0].Name != "kedge" || s.Modules[0].Revision == "" || s.Modules[0].Organization == "" {
		t.Fatalf("modules: %+v", s.Modules)
	}
	for _, c := range []struct {
		path   string
		kind   tree.NodeKind
		config bool
	}{
		{"/kedge/posture/config/level", tree.KindLeaf, true},
		{"/kedge/posture/state/effective-level", tree.KindLeaf, false},
		{"/kedge/routes/route", tree.KindList, true},
		{"/kedge/mesh/peers/peer/config/allowed-ips", tree.KindLeafList, true},
		{"/kedge/sessions/session", tree.KindList, false},
	} {
		n := s.Find(c.path)
		if n == nil {
			t.Fatalf("%s missing", c.path)
		}
		if n.Kind != c.kind || n.Config != c.config {
			t.Fatalf("%s: kind %v config %v", c.path, n.Kind, n.Config)
		}
	}
	if k := s.Find("/kedge/routes/route").Keys; len(k) != 2 || k[0].Name != "prefix" || k[1].Name != "table" {
		t.Fatalf("route keys %v", k)
	}
	if !s.Find("/kedge/mesh/peers/peer/config/public-key").Mandatory {
		t.Fatal("peer public-key is not mandatory")
	}
	if s.Find("/kedge/underlay/vlans/vlan/members/member/config/device").Type.Target == nil {
		t.Fatal("VLAN member device leafref unresolved")
	}
}
