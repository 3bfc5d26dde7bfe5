package treegen_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	kyang "github.com/guildhouse-co/kedge/yang"
	"github.com/guildhouse-co/kedge/yang/treegen"
)

// TestFresh regenerates both packages and compares them with gen/, so a
// module change without make generate fails here as well as in CI.
func TestFresh(t *testing.T) {
	set, err := kyang.Load("..")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	paths, err := treegen.Paths(set.Root(), "kedgepath")
	if err != nil {
		t.Fatalf("generate paths: %v", err)
	}
	readers, err := treegen.Readers(set.Root(), "kedgetree", "github.com/guildhouse-co/kedge/gen/kedgepath")
	if err != nil {
		t.Fatalf("generate readers: %v", err)
	}
	for file, want := range map[string][]byte{
		"../../gen/kedgepath/kedgepath.go": paths,
		"../../gen/kedgetree/kedgetree.go": readers,
	} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read generated: %v", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale: run make generate", file)
		}
	}
}

func TestPaths(t *testing.T) {
	root := kedgepath.Root().Kedge()
	tests := []struct {
		p    interface{ String() string }
		want string
	}{
		{p: root.Posture().Config().Level(), want: "/kedge/posture/config/level"},
		{p: root.Posture().State().LastTransition().Steps().Step(2).State().DurationNs(),
			want: "/kedge/posture/state/last-transition/steps/step[index=2]/state/duration-ns"},
		{p: root.Mesh().Peers().Peer("node-b").Config().PublicKey(), want: "/kedge/mesh/peers/peer[name=node-b]/config/public-key"},
		{p: root.Mesh().Peers().PeerAny().State().Status(), want: "/kedge/mesh/peers/peer[name=*]/state/status"},
		{p: root.Routes().Route("10.1.0.0/16", 254).State().Status(), want: "/kedge/routes/route[prefix=10.1.0.0/16][table=254]/state/status"},
		{p: root.Pods().Pod("abc", "eth0").Config().Tier(), want: "/kedge/pods/pod[container-id=abc][ifname=eth0]/config/tier"},
		{p: root.Sessions().Session("s1").State().EffectivePosture(), want: "/kedge/sessions/session[id=s1]/state/effective-posture"},
		{p: root.Underlay().Mutations().Mutation("m]1\\").Config().Proposer(), want: `/kedge/underlay/mutations/mutation[id=m\]1\\]/config/proposer`},
		{p: root.Underlay().Vlans().Vlan(100).Members().Member("sw1", "eth1").Config().Device(),
			want: "/kedge/underlay/vlans/vlan[id=100]/members/member[device=sw1][port=eth1]/config/device"},
		{p: kedgepath.Root(), want: "/"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("path = %s, want %s", got, tt.want)
		}
	}
	// Paths built from one prefix do not share their last element.
	st := root.Routes().Route("10.2.0.0/16", 0).State()
	a, b := st.Status(), st.Reason()
	if a.String() == b.String() || st.String() != "/kedge/routes/route[prefix=10.2.0.0/16][table=0]/state" {
		t.Errorf("siblings from one prefix: %s and %s (prefix %s)", a, b, st)
	}
	if got := root.Routes().RouteAny().Config().Prefix().SchemaPath(); got != "/kedge/routes/route/config/prefix" {
		t.Errorf("SchemaPath = %s", got)
	}
}

func TestValues(t *testing.T) {
	root := kedgepath.Root().Kedge()
	tests := []struct {
		got, want *gpb.TypedValue
	}{
		{root.Posture().Config().Level().Val(3), &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 3}}},
		{root.Routes().Route("a", 1).State().Status().Val(kedgepath.RouteStatusWithheld),
			&gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "withheld"}}},
		{root.Mesh().Peers().Peer("a").Config().Critical().Val(true), &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}}},
		{root.Mesh().Config().Addresses().Val([]string{"10.0.0.1/32", "fd00::1/128"}),
			&gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: []*gpb.TypedValue{
				{Value: &gpb.TypedValue_StringVal{StringVal: "10.0.0.1/32"}}, {Value: &gpb.TypedValue_StringVal{StringVal: "fd00::1/128"}}}}}}},
	}
	for _, tt := range tests {
		if !proto.Equal(tt.got, tt.want) {
			t.Errorf("value = %v, want %v", tt.got, tt.want)
		}
	}
	if got := kedgepath.TierValues(); len(got) != 4 || got[0] != kedgepath.TierMaster || got[3] != kedgepath.TierObserver {
		t.Errorf("TierValues = %v", got)
	}
}

// TestRejectsCollisions feeds the generator modules whose names it cannot
// turn into distinct Go names, and one it cannot type.
func TestRejectsCollisions(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"reserved method": {`container kedge { leaf len { type string; } }`, "reserved"},
		"type twice": {`container kedge {
			container a-b { leaf x { type string; } }
			container a_b { leaf x { type string; } }
		}`, "both need the Go name"},
		"enum twins differ": {`container kedge {
			container thing {
				container config { leaf mode { type enumeration { enum a; enum b; } } }
				container state { config false; leaf mode { type enumeration { enum a; enum c; } } }
			}
		}`, "other values"},
		"unsupported type": {`container kedge { leaf ratio { type decimal64 { fraction-digits 2; } } }`, "not supported"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mod := "module kedge {\n namespace \"urn:test\";\n prefix kedge;\n" + tc.body + "\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "kedge.yang"), []byte(mod), 0o644); err != nil {
				t.Fatal(err)
			}
			set, err := kyang.Load(dir)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			_, err = treegen.Paths(set.Root(), "p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Paths error = %v, want one containing %q", err, tc.want)
			}
			_, err = treegen.Readers(set.Root(), "r", "example.com/p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Readers error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestPathParts: a path's two parts put together are its Elems; the part
// below the last keyed element is one slice for every path to the same
// schema node; and building more paths from a path (siblings, keyed paths
// below it, wildcards) never writes to the elements of one already built,
// which share their keyless elements with every other path.
func TestPathParts(t *testing.T) {
	root := kedgepath.Root().Kedge()
	render := func(es []*gpb.PathElem) string {
		var s []string
		for _, e := range es {
			s = append(s, fmt.Sprintf("%p%s%v", e, e.GetName(), e.GetKey()))
		}
		return strings.Join(s, "/")
	}
	type path interface {
		String() string
		Elems() []*gpb.PathElem
		Parts() (keyed, rel []*gpb.PathElem)
	}
	e := root.Aft().Ipv4Entries().Ipv4Entry("10.0.0.0/24")
	vlan := root.Underlay().Vlans().Vlan(100)
	built := []path{
		e, e.Config(), e.Config().Prefix(), e.State().Status(), root.Aft().Ipv4Entries(),
		vlan.Members(), vlan.Members().Member("sw1", "eth1").Config().Device(), kedgepath.Root(),
	}
	var before []string
	for _, p := range built {
		before = append(before, render(p.Elems()))
		keyed, rel := p.Parts()
		if got, want := render(append(append([]*gpb.PathElem(nil), keyed...), rel...)), render(p.Elems()); got != want {
			t.Errorf("%s: parts %s, Elems %s", p, got, want)
		}
		for _, el := range rel {
			if len(el.GetKey()) > 0 {
				t.Errorf("%s: keyed element %s below the keyed part", p, el.GetName())
			}
		}
		if len(keyed) > 0 && len(rel) > 0 && len(keyed[len(keyed)-1].GetKey()) == 0 {
			t.Errorf("%s: keyed part ends with keyless %s", p, keyed[len(keyed)-1].GetName())
		}
	}
	_, r1 := e.Config().Prefix().Parts()
	_, r2 := root.Aft().Ipv4Entries().Ipv4Entry("10.0.1.0/24").Config().Prefix().Parts()
	if len(r1) != 2 || &r1[0] != &r2[0] {
		t.Errorf("two entries' config/prefix do not share their keyless part: %s and %s", render(r1), render(r2))
	}
	// More paths from the same prefixes.
	for i := range 3 {
		c := e.Config()
		_, _, _ = c.Session(), c.NextHopGroup(), c.Metadata()
		_ = e.State().Reason().Elems()
		m := vlan.Members()
		_ = m.Member("sw2", fmt.Sprint("eth", i)).Config().Port().Elems()
		_ = m.MemberAny().Elems()
		_ = root.Aft().Ipv4Entries().Ipv4Entry(fmt.Sprint("10.1.", i, ".0/24")).Config().Session().Elems()
	}
	for i, p := range built {
		if got := render(p.Elems()); got != before[i] {
			t.Errorf("%s changed after building more paths:\nbefore %s\nafter  %s", p, before[i], got)
		}
	}
}

// TestEntryRef: an entry's EntryRef carries its list, key names and typed
// keys, and its Elems are the entry path's (string, integer and enum-less
// keys, a list below a keyed list); a Below path has no keyed part.
func TestEntryRef(t *testing.T) {
	root := kedgepath.Root().Kedge()
	vlan := root.Underlay().Vlans().Vlan(100)
	for _, c := range []struct {
		ref  kedgepath.EntryRef
		path interface{ Elems() []*gpb.PathElem }
		keys []kedgepath.Key
	}{
		{root.Aft().Ipv4Entries().Ipv4EntryRef("10.0.0.0/8"), root.Aft().Ipv4Entries().Ipv4Entry("10.0.0.0/8"), []kedgepath.Key{{Text: "10.0.0.0/8"}}},
		{root.Routes().RouteRef("10.1.0.0/16", 254), root.Routes().Route("10.1.0.0/16", 254),
			[]kedgepath.Key{{Text: "10.1.0.0/16"}, {Uint: 254, Kind: kedgepath.KeyUint}}},
		{vlan.Members().MemberRef("sw1", "eth1"), vlan.Members().Member("sw1", "eth1"),
			[]kedgepath.Key{{Text: "sw1"}, {Text: "eth1"}}},
	} {
		want := c.path.Elems()
		got := c.ref.Elems()
		if len(got) != len(want) {
			t.Fatalf("%v: %d elements, want %d", got, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Errorf("element %d: %v, want %v", i, got[i], want[i])
			}
		}
		if c.ref.List() != want[len(want)-1].GetName() || c.ref.NumKeys() != len(c.keys) || !proto.Equal(&gpb.Path{Elem: c.ref.Parent()}, &gpb.Path{Elem: want[:len(want)-1]}) {
			t.Errorf("%v: list %s, %d keys, parent %v", want, c.ref.List(), c.ref.NumKeys(), c.ref.Parent())
		}
		for i, k := range c.keys {
			if c.ref.Key(i) != k || c.ref.KeyNames()[i] == "" {
				t.Errorf("%v: key %d %+v (%q), want %+v", want, i, c.ref.Key(i), c.ref.KeyNames()[i], k)
			}
		}
	}
	keyed, rel := root.Aft().Ipv4Entries().Ipv4EntryBelow().Config().NextHopGroup().Parts()
	if len(keyed) != 0 || fmt.Sprint(rel) != fmt.Sprint(root.Aft().Ipv4Entries().Ipv4Entry("x").Config().NextHopGroup().Elems()[4:]) {
		t.Errorf("Below: keyed part %v, relative %v", keyed, rel)
	}
}
