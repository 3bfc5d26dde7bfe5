package yang_test

import (
	"encoding/base64"
	"strings"
	"testing"

	goyang "github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/kedge"
	kyang "github.com/guildhouse-co/kedge/yang"
)

// wgKey is a well-formed key: base64 of 32 bytes.
var wgKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// samples exercise the kedge-types patterns through a leaf that uses each.
// Every sample is checked twice: against the pattern as the tree store
// compiles it (RE2, anchored) and through ygot's validation of the generated
// structs, so the two validators cannot drift apart unnoticed.
var samples = []struct {
	leaf  string // which leaf of set() receives the value
	value string
	ok    bool
}{
	{"public-key", wgKey, true},
	{"public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", true},
	{"public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", false}, // 43rd char has low bits set
	{"public-key", strings.TrimSuffix(wgKey, "="), false},
	{"public-key", wgKey[:42] + "==", false},
	{"public-key", "not a key", false},
	{"endpoint", "10.0.0.1:51820", true},
	{"endpoint", "node-a.example.com:443", true},
	{"endpoint", "[fd00::1]:51820", true},
	{"endpoint", "10.0.0.1", false},
	{"endpoint", "fd00::1:51820", false},
	{"endpoint", "10.0.0.1:0", false},
	{"endpoint", "10.0.0.1:65536", false},
	{"endpoint", ":51820", false},
	{"allowed-ips", "10.0.0.0/8", true},
	{"allowed-ips", "10.1.2.3/32", true},
	{"allowed-ips", "0.0.0.0/0", true},
	{"allowed-ips", "fd00:4b::/48", true},
	{"allowed-ips", "::/0", true},
	{"allowed-ips", "2001:db8::1/128", true},
	{"allowed-ips", "10.0.0.256/8", false},
	{"allowed-ips", "10.0.0.0/33", false},
	{"allowed-ips", "010.0.0.0/8", false},
	{"allowed-ips", "10.0.0.0", false},
	{"allowed-ips", "fd00::/129", false},
	{"allowed-ips", "1:2:3:4:5:6:7:8:9/64", false},
	{"allowed-ips", "fd00:::1/64", false},
	{"next-hop", "10.0.0.1", true},
	{"next-hop", "fe80::1", true},
	{"next-hop", "10.0.0.1/32", false},
	{"next-hop", "fe80::1%eth0", false},
	{"device", "eth0", true},
	{"device", "veth_a.1-x", true},
	{"device", "123456789012345", true},
	{"device", "1234567890123456", false}, // 16 bytes: longer than IFNAMSIZ-1
	{"device", "", false},
	{"device", "a/b", false},
	{"device", "-x", false},
	{"device", "eth 0", false},
}

// leafPaths are the schema leaves that samples target.
var leafPaths = map[string]string{
	"public-key":  "/kedge/mesh/peers/peer/config/public-key",
	"endpoint":    "/kedge/mesh/peers/peer/config/endpoint",
	"allowed-ips": "/kedge/mesh/peers/peer/config/allowed-ips",
	"next-hop":    "/kedge/routes/route/config/next-hop",
	"device":      "/kedge/routes/route/config/device",
}

// deviceWith returns a valid tree with one peer and one route, the sampled
// leaf set to v.
func deviceWith(leaf, v string) *kedge.Device {
	d := &kedge.Device{}
	peer := d.GetOrCreateKedge().GetOrCreateMesh().GetOrCreatePeers().GetOrCreatePeer("a")
	pc := peer.GetOrCreateConfig()
	pc.Name = ygot.String("a")
	pc.PublicKey = ygot.String(wgKey)
	route := d.GetOrCreateKedge().GetOrCreateRoutes().GetOrCreateRoute("10.9.0.0/16", 254)
	rc := route.GetOrCreateConfig()
	rc.Prefix = ygot.String("10.9.0.0/16")
	rc.Table = ygot.Uint32(254)
	switch leaf {
	case "public-key":
		pc.PublicKey = ygot.String(v)
	case "endpoint":
		pc.Endpoint = ygot.String(v)
	case "allowed-ips":
		pc.AllowedIps = []string{v}
	case "next-hop":
		rc.NextHop = ygot.String(v)
	case "device":
		rc.Device = ygot.String(v)
	}
	return d
}

// storeAccepts applies the type's restrictions the way the tree store does:
// lengths and anchored RE2 patterns, a union accepting what any member does.
func storeAccepts(t *testing.T, typ *goyang.YangType, v string) bool {
	t.Helper()
	if typ.Kind == goyang.Yunion {
		for _, m := range typ.Type {
			if storeAccepts(t, m, v) {
				return true
			}
		}
		return false
	}
	if len(typ.Length) > 0 {
		n := uint64(len(v))
		in := false
		for _, r := range typ.Length {
			if n >= r.Min.Value && n <= r.Max.Value {
				in = true
			}
		}
		if !in {
			return false
		}
	}
	for _, p := range typ.Pattern {
		re, err := kyang.CompilePattern(p)
		if err != nil {
			t.Fatalf("pattern %q: %v", p, err)
		}
		if !re.MatchString(v) {
			return false
		}
	}
	return true
}

func TestTypePatterns(t *testing.T) {
	set, err := kyang.Load(".")
	if err != nil {
		t.Fatalf("load modules: %v", err)
	}
	root := set.Entry(kyang.RootModule)
	if err := deviceWith("", "").Validate(); err != nil {
		t.Fatalf("baseline tree does not validate: %v", err)
	}
	for _, s := range samples {
		t.Run(s.leaf+"="+s.value, func(t *testing.T) {
			leaf := find(root, leafPaths[s.leaf])
			if leaf == nil {
				t.Fatalf("leaf %s not in schema", leafPaths[s.leaf])
			}
			if got := storeAccepts(t, leaf.Type, s.value); got != s.ok {
				t.Errorf("pattern check of %q for %s: accepted %v, want %v", s.value, s.leaf, got, s.ok)
			}
			err := deviceWith(s.leaf, s.value).Validate()
			if got := err == nil; got != s.ok {
				t.Errorf("ygot validation of %q for %s: accepted %v, want %v (err: %v)", s.value, s.leaf, got, s.ok, err)
			}
		})
	}
}

func TestRangesAndEnums(t *testing.T) {
	d := deviceWith("", "")
	d.GetOrCreateKedge().GetOrCreatePosture().GetOrCreateConfig().Level = ygot.Uint8(0)
	if err := d.Validate(); err == nil {
		t.Error("posture level 0 validated, want a range error")
	}
	d.GetOrCreateKedge().GetOrCreatePosture().GetOrCreateConfig().Level = ygot.Uint8(1)
	d.GetOrCreateKedge().GetOrCreateMesh().GetOrCreateConfig().Mtu = ygot.Uint16(1279)
	if err := d.Validate(); err == nil {
		t.Error("mtu 1279 validated, want a range error")
	}
	d.GetOrCreateKedge().GetOrCreateMesh().GetOrCreateConfig().Mtu = ygot.Uint16(9000)
	d.GetOrCreateKedge().GetOrCreateSystem().GetOrCreateConfig().Role = kedge.Kedge_NodeRole_cloud_anchor
	if err := d.Validate(); err != nil {
		t.Errorf("valid tree rejected: %v", err)
	}
}

// TestLeafrefs checks that ygot enforces a VLAN member's device leafref,
// an absolute leafref into the device list.
func TestLeafrefs(t *testing.T) {
	d := deviceWith("", "")
	u := d.GetOrCreateKedge().GetOrCreateUnderlay()
	v := u.GetOrCreateVlans().GetOrCreateVlan(100)
	v.GetOrCreateConfig().Id = ygot.Uint16(100)
	m := v.GetOrCreateMembers().GetOrCreateMember("sw1", "eth1").GetOrCreateConfig()
	m.Device = ygot.String("sw1")
	m.Port = ygot.String("eth1")
	if err := d.Validate(); err == nil {
		t.Error("member on an unknown device validated, want a leafref error")
	}
	dev := u.GetOrCreateDevices().GetOrCreateDevice("sw1").GetOrCreateConfig()
	dev.Name = ygot.String("sw1")
	if err := d.Validate(); err != nil {
		t.Errorf("member on a known device rejected: %v", err)
	}
}
