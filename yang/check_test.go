package yang_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	kyang "github.com/guildhouse-co/kedge/yang"
)

// badModule breaks one rule per line marked with the message Check must
// report there.
const badModule = `module kedge {
  namespace "urn:test";
  prefix kedge;
  identity thing;
  container kedge {
    leaf ratio { type decimal64 { fraction-digits 2; } }
    leaf word { type string { pattern '\p{IsBasicLatin}+'; } }
    leaf dangling { type leafref { path "../nowhere"; } }
    leaf filtered { type leafref { path "/kedge:kedge/kedge:items/kedge:item[kedge:name='a']/kedge:name"; } }
    choice pick { leaf a { type string; } }
    container items {
      list item {
        key "name";
        leaf name { type string; }
      }
    }
  }
}
`

func TestCheckRejects(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kedge.yang"), []byte(badModule), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := kyang.Load(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var got []string
	for _, p := range set.Check() {
		// Keep line and the gist: the message up to its first colon.
		_, rest, _ := strings.Cut(p.Pos, ".yang:")
		line, _, _ := strings.Cut(rest, ":")
		got = append(got, line+" "+p.Msg)
	}
	wantSubstrings := []string{
		"4 identity",
		"6 type decimal64",
		"6 /kedge/ratio has no description",
		"7 pattern is not RE2",
		"8 leafref path \"../nowhere\"",
		"9 leafref path",
		"10 choice",
		"12 list /kedge/items/item: key name must be a leafref to ../config/name",
	}
	for _, w := range wantSubstrings {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem reported starting %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestLoadReportsPositions(t *testing.T) {
	dir := t.TempDir()
	bad := "module kedge {\n  namespace \"urn:test\";\n  prefix kedge;\n  container kedge {\n    leaf x { type no-such-type; }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "kedge.yang"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := kyang.Load(dir)
	if err == nil {
		t.Fatal("load of a module with an unknown type succeeded")
	}
	if !strings.Contains(err.Error(), "kedge.yang:5:") {
		t.Errorf("error %q does not name kedge.yang:5", err)
	}
}

func TestReplaceTree(t *testing.T) {
	readme := "# x\n\nintro\n" + kyang.TreeBegin + "\nstale\n" + kyang.TreeEnd + "\nafter\n"
	once, err := kyang.ReplaceTree([]byte(readme), "module: kedge\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# x\n\nintro\n" + kyang.TreeBegin + "\n```text\nmodule: kedge\n```\n" + kyang.TreeEnd + "\nafter\n"
	if diff := cmp.Diff(want, string(once)); diff != "" {
		t.Errorf("replaced readme (-want +got):\n%s", diff)
	}
	twice, err := kyang.ReplaceTree(once, "module: kedge\n")
	if err != nil {
		t.Fatal(err)
	}
	if string(twice) != string(once) {
		t.Error("replacing the tree twice changed the readme")
	}
	if _, err := kyang.ReplaceTree([]byte("# no markers\n"), "x"); err == nil {
		t.Error("readme without markers accepted")
	}
	if _, err := kyang.ReplaceTree([]byte(kyang.TreeEnd+"\n"+kyang.TreeBegin), "x"); err == nil {
		t.Error("readme with markers out of order accepted")
	}
}

func TestPathStructs(t *testing.T) {
	root := kedgepath.DeviceRoot("")
	tests := []struct {
		p    ygot.PathStruct
		want string
	}{
		{root.Kedge().Posture().Config().Level(), "/kedge/posture/config/level"},
		{root.Kedge().Posture().State().LastTransition().Steps().Step(2).State().DurationNs(), "/kedge/posture/state/last-transition/steps/step[index=2]/state/duration-ns"},
		{root.Kedge().Mesh().Peers().Peer("node-b").Config().PublicKey(), "/kedge/mesh/peers/peer[name=node-b]/config/public-key"},
		{root.Kedge().Mesh().Peers().PeerAny().State().Status(), "/kedge/mesh/peers/peer[name=*]/state/status"},
		{root.Kedge().Routes().Route("10.1.0.0/16", 254).State().Status(), "/kedge/routes/route[prefix=10.1.0.0/16][table=254]/state/status"},
		{root.Kedge().Pods().Pod("abc", "eth0").Config().Tier(), "/kedge/pods/pod[container-id=abc][ifname=eth0]/config/tier"},
		{root.Kedge().Sessions().Session("s1").State().EffectivePosture(), "/kedge/sessions/session[id=s1]/state/effective-posture"},
		{root.Kedge().Underlay().Vlans().Vlan(100).Members().Member("sw1", "eth1").Config().Device(), "/kedge/underlay/vlans/vlan[id=100]/members/member[device=sw1][port=eth1]/config/device"},
	}
	for _, tt := range tests {
		p, _, errs := ygot.ResolvePath(tt.p)
		if errs != nil {
			t.Errorf("%s: resolve: %v", tt.want, errs)
			continue
		}
		got, err := ygot.PathToString(p)
		if err != nil {
			t.Errorf("%s: to string: %v", tt.want, err)
			continue
		}
		if got != tt.want {
			t.Errorf("path = %s, want %s", got, tt.want)
		}
	}
}

// TestPathStructsFresh regenerates the path structs and compares them with
// gen/kedgepath, so a module change without make generate fails here too.
func TestPathStructsFresh(t *testing.T) {
	set, err := kyang.Load(".")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	src, err := kyang.PathStructs(set.Root(), "kedgepath")
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	old, err := os.ReadFile("../gen/kedgepath/kedgepath.go")
	if err != nil {
		t.Fatalf("read generated: %v", err)
	}
	if string(src) != string(old) {
		t.Error("gen/kedgepath is stale: run make generate")
	}
}
