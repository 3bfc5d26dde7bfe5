package yang_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
