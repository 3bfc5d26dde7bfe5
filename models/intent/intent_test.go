package intent

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

type leaf struct {
	path string
	val  *gpb.TypedValue
}

func s(v string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}
}
func u(v uint64) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}} }
func b(v bool) *gpb.TypedValue   { return &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: v}} }
func js(v string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(v)}}
}

func build(t *testing.T, leaves []leaf) *tree.Tree {
	t.Helper()
	return buildTree(t, leaves)
}

func routeLeaves(prefix, class, tier string) []leaf {
	base := "/kedge/routes/route[prefix=" + prefix + "][table=254]/config/"
	ls := []leaf{{base + "prefix", s(prefix)}, {base + "table", u(254)}, {base + "device", s("eth0")}, {base + "class", s(class)}}
	if tier != "" {
		ls = append(ls, leaf{base + "tier", s(tier)})
	}
	return ls
}

// TestRoutesPerLevel is the seed's CNI table over one tree.
func TestRoutesPerLevel(t *testing.T) {
	var ls []leaf
	for _, r := range [][3]string{
		{"10.1.0.0/24", "management", ""},
		{"10.2.0.0/24", "incident", ""},
		{"10.3.0.0/24", "monitoring", ""},
		{"10.4.0.0/24", "overlay", ""},
		{"10.5.0.0/24", "underlay", "master"},
		{"10.6.0.0/24", "underlay", "operator"},
		{"10.7.0.0/24", "underlay", ""}, // no tier: operator
		{"10.8.0.0/24", "pod", ""},
		{"10.9.0.0/24", "underlay", "operator"}, // reaches the SPIRE endpoint
	} {
		ls = append(ls, routeLeaves(r[0], r[1], r[2])...)
	}
	ep := "/kedge/routes/endpoints/endpoint[name=spire]/config/"
	ls = append(ls, leaf{ep + "name", s("spire")}, leaf{ep + "kind", s("management")}, leaf{ep + "prefix", s("10.9.0.5/32")})
	tr := build(t, ls)
	all := []string{"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24", "10.5.0.0/24", "10.6.0.0/24", "10.7.0.0/24", "10.8.0.0/24", "10.9.0.0/24"}
	want := map[uint8][]string{
		5: all,
		4: all, // "Same as 5. No route changes."
		3: {"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24", "10.5.0.0/24", "10.8.0.0/24"},
		2: {"10.1.0.0/24", "10.2.0.0/24", "10.9.0.0/24"},
		1: {"10.2.0.0/24", "10.3.0.0/24"},
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
		if len(set.Withheld)+len(got) != len(all) {
			t.Errorf("level %d: %d installed + %d withheld, want %d in all", l, len(got), len(set.Withheld), len(all))
		}
		for _, w := range set.Withheld {
			if w.Reason == "" {
				t.Errorf("level %d: %s withheld without a reason", l, w.Dst)
			}
		}
	}
}

func key(i byte) string {
	k := make([]byte, 32)
	k[0] = i
	return base64.StdEncoding.EncodeToString(k)
}

func TestMeshPerLevel(t *testing.T) {
	var ls []leaf
	for _, p := range []struct {
		name     string
		critical bool
		ka       uint64
	}{{"anchor", true, 0}, {"lab", false, 5}, {"nas", false, 0}} {
		base := "/kedge/mesh/peers/peer[name=" + p.name + "]/config/"
		ls = append(ls, leaf{base + "name", s(p.name)}, leaf{base + "public-key", s(key(byte(len(p.name))))},
			leaf{base + "critical", b(p.critical)}, leaf{base + "allowed-ips", js(`["10.99.0.` + string('1'+byte(len(p.name))) + `/32"]`)})
		if p.ka != 0 {
			ls = append(ls, leaf{base + "persistent-keepalive", u(p.ka)})
		}
	}
	ls = append(ls, leaf{"/kedge/mesh/config/listen-port", u(51820)})
	tr := build(t, ls)
	want := map[uint8][]string{5: {"anchor", "lab", "nas"}, 4: {"anchor", "lab", "nas"}, 3: {"anchor", "lab", "nas"}, 2: {"anchor"}, 1: nil}
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		a, _ := accord.Default(l)
		cfg := Mesh(tr, a, wgmesh.Config{Interface: "kedge0"})
		var got []string
		for _, p := range cfg.Peers {
			got = append(got, p.Name)
			wantKA := time.Duration(a.KeepaliveSeconds) * time.Second
			if p.Name == "lab" {
				wantKA = 5 * time.Second
			}
			if p.PersistentKeepalive != wantKA {
				t.Errorf("level %d peer %s keepalive %v, want %v", l, p.Name, p.PersistentKeepalive, wantKA)
			}
			if len(p.AllowedIPs) != 1 {
				t.Errorf("level %d peer %s allowed IPs %v", l, p.Name, p.AllowedIPs)
			}
		}
		if d := cmp.Diff(want[l], got); d != "" {
			t.Errorf("level %d peers (-want +got):\n%s", l, d)
		}
		if cfg.ListenPort != 51820 || cfg.Interface != "kedge0" {
			t.Errorf("level %d: port %d interface %q", l, cfg.ListenPort, cfg.Interface)
		}
	}
}
