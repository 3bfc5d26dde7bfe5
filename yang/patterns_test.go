package yang_test

import (
	"encoding/base64"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	goyang "github.com/openconfig/goyang/pkg/yang"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	kyang "github.com/guildhouse-co/kedge/yang"
)

// wgKey is a well-formed key: base64 of 32 bytes.
var wgKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// samples exercise the kedge-types patterns through a leaf that uses each.
// Every sample is checked twice: against the pattern as yangcheck compiles
// it (RE2, anchored) and by writing it into a tree over the embedded schema,
// which is what a gNMI Set does, so the two cannot drift apart unnoticed.
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

// set writes, in one config transaction on a fresh tree over the embedded
// schema, one peer and one route with the sampled leaf set to v (nothing
// extra when leaf is ""), then edit, and validates the transaction.
func set(t *testing.T, leaf, v string, edit func(tx *tree.Txn) error) error {
	t.Helper()
	s, err := kyang.Schema()
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	tx, err := tree.New(s).Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	write := func(path string, val *gpb.TypedValue) error {
		elems, err := tree.ParsePath(path)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		return tx.Update(elems, val)
	}
	str := func(v string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}} }
	const peer, route = "/kedge/mesh/peers/peer[name=a]/config/", "/kedge/routes/route[prefix=10.9.0.0/16][table=254]/config/"
	for _, err := range []error{
		write(peer+"public-key", str(wgKey)),
		write(route+"device", str("eth0")),
	} {
		if err != nil {
			t.Fatalf("baseline tree: %v", err)
		}
	}
	var werr error
	switch leaf {
	case "public-key", "endpoint":
		werr = write(peer+leaf, str(v))
	case "allowed-ips":
		werr = write(peer+leaf, &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: []*gpb.TypedValue{str(v)}}}})
	case "next-hop", "device":
		werr = write(route+leaf, str(v))
	}
	if werr != nil {
		return werr
	}
	if edit != nil {
		if err := edit(tx); err != nil {
			return err
		}
	}
	return tx.Validate()
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
	set0, err := kyang.Load(".")
	if err != nil {
		t.Fatalf("load modules: %v", err)
	}
	root := set0.Entry(kyang.RootModule)
	if err := set(t, "", "", nil); err != nil {
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
			err := set(t, s.leaf, s.value, nil)
			if got := err == nil; got != s.ok {
				t.Errorf("tree accepting %q for %s: %v, want %v (err: %v)", s.value, s.leaf, got, s.ok, err)
			}
		})
	}
}

// update returns an edit writing one leaf.
func update(path string, val *gpb.TypedValue) func(tx *tree.Txn) error {
	return func(tx *tree.Txn) error {
		elems, err := tree.ParsePath(path)
		if err != nil {
			return err
		}
		return tx.Update(elems, val)
	}
}

func uintVal(n uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
}

func TestRangesAndEnums(t *testing.T) {
	for _, c := range []struct {
		path string
		val  *gpb.TypedValue
		ok   bool
	}{
		{"/kedge/posture/config/level", uintVal(0), false},
		{"/kedge/posture/config/level", uintVal(1), true},
		{"/kedge/mesh/config/mtu", uintVal(1279), false},
		{"/kedge/mesh/config/mtu", uintVal(9000), true},
		{"/kedge/system/config/role", &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "cloud-anchor"}}, true},
		{"/kedge/system/config/role", &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "cloud_anchor"}}, false},
	} {
		err := set(t, "", "", update(c.path, c.val))
		if got := err == nil; got != c.ok {
			t.Errorf("%s = %v: accepted %v, want %v (err: %v)", c.path, c.val, got, c.ok, err)
		}
	}
}

// TestLeafrefs checks that the tree enforces a VLAN member's device
// leafref, an absolute leafref into the device list.
func TestLeafrefs(t *testing.T) {
	str := func(v string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}} }
	member := update("/kedge/underlay/vlans/vlan[id=100]/members/member[device=sw1][port=eth1]/config/device", str("sw1"))
	if err := set(t, "", "", member); err == nil {
		t.Error("a member on an unknown device validated, want a leafref error")
	}
	withDevice := func(tx *tree.Txn) error {
		if err := update("/kedge/underlay/devices/device[name=sw1]/config/name", str("sw1"))(tx); err != nil {
			return err
		}
		return member(tx)
	}
	if err := set(t, "", "", withDevice); err != nil {
		t.Errorf("a member on a known device rejected: %v", err)
	}
}
