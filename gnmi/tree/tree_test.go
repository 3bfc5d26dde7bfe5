package tree

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

type op struct {
	kind string // "update", "replace", "delete"
	path string
	val  *gpb.TypedValue
}

// apply runs ops in one transaction, validates, and commits or rolls back.
func apply(t *testing.T, tr *Tree, state bool, ops ...op) ([]Change, error) {
	t.Helper()
	tx, err := tr.Begin(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		var err error
		switch o.kind {
		case "update":
			err = tx.Update(p(t, o.path), o.val)
		case "replace":
			err = tx.Replace(p(t, o.path), o.val)
		case "delete":
			err = tx.Delete(p(t, o.path))
		}
		if err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	if err := tx.Validate(); err != nil {
		tx.Rollback()
		return nil, err
	}
	ch := tx.Changes()
	tx.Commit()
	return ch, nil
}

func render(ch []Change) []string {
	var out []string
	for _, c := range ch {
		if c.Op == OpDelete {
			out = append(out, "del "+c.Path())
		} else {
			out = append(out, "set "+c.Path()+"="+c.Val.String())
		}
	}
	sort.Strings(out)
	return out
}

// dump renders every set leaf of the tree, sorted, as the ground truth for
// "nothing changed" checks.
func dump(tr *Tree) string {
	var lines []string
	_ = Match{In: tr.Root()}.Leaves(nil, func(in *Inst, n *Node, v Value) error {
		lines = append(lines, Match{In: in, Node: n}.Path()+"="+v.String())
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

const r1 = "/top/routes/route[prefix=10.0.0.0/24][table=254]"

func TestUpdateCreatesEntryAndMirrorsKeys(t *testing.T) {
	tr := New(testSchema(t))
	ch, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"set " + r1 + "/config/device=eth0",
		"set " + r1 + "/config/prefix=10.0.0.0/24",
		"set " + r1 + "/config/table=254",
		"set " + r1 + "/prefix=10.0.0.0/24",
		"set " + r1 + "/table=254",
	}
	if d := cmp.Diff(want, render(ch)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	// Writing the same value again is no change at all.
	ch, err = apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")})
	if err != nil || len(ch) != 0 {
		t.Fatalf("idempotent update: changes %v err %v", render(ch), err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false,
		op{"update", "/top/devices/device[name=sw1]/config/address", strVal("192.0.2.1")},
		op{"update", r1 + "/config/device", strVal("eth0")},
	); err != nil {
		t.Fatal(err)
	}
	before := dump(tr)
	cases := []struct {
		name string
		ops  []op
		want error
		in   string // substring the message must contain
	}{
		{"unknown leaf", []op{{"update", r1 + "/config/nope", strVal("x")}}, ErrUnknownPath, "nope"},
		{"unknown container", []op{{"update", "/top/nope/x", strVal("x")}}, ErrUnknownPath, "nope"},
		{"wrong type", []op{{"update", r1 + "/config/metric", strVal("ten")}}, ErrBadValue, "metric"},
		{"out of range", []op{{"update", r1 + "/config/metric", uintVal(1001)}}, ErrBadValue, "0..1000"},
		{"range uint8", []op{{"update", "/top/posture/config/level", uintVal(6)}}, ErrBadValue, "1..5"},
		{"pattern", []op{{"update", r1 + "/config/extra", jsonVal(`["not-a-prefix"]`)}}, ErrBadValue, "not-a-prefix"},
		{"length", []op{{"update", r1 + "/config/device", strVal("a-very-long-interface-name")}}, ErrBadValue, "length"},
		{"enum", []op{{"update", r1 + "/config/class", strVal("bogus")}}, ErrBadValue, "bogus"},
		{"malformed key", []op{{"update", "/top/routes/route[prefix=nope][table=1]/config/device", strVal("x")}}, ErrBadValue, "nope"},
		{"missing key", []op{{"update", "/top/routes/route[prefix=10.1.0.0/16]/config/device", strVal("x")}}, ErrBadPath, "table"},
		{"key not a number", []op{{"update", "/top/routes/route[prefix=10.1.0.0/16][table=x]/config/device", strVal("x")}}, ErrBadValue, "table"},
		{"delete key leaf", []op{{"delete", r1 + "/config/prefix", nil}}, ErrKeyLeaf, "delete the list entry"},
		{"delete entry key", []op{{"delete", r1 + "/prefix", nil}}, ErrKeyLeaf, ""},
		{"change mirror", []op{{"update", r1 + "/config/table", uintVal(7)}}, ErrKeyLeaf, "differs"},
		{"write state", []op{{"update", r1 + "/state/status", strVal("installed")}}, ErrReadOnly, "config false"},
		{"mandatory", []op{{"update", "/top/devices/device[name=sw2]/config/name", strVal("sw2")}}, ErrMandatory, " at /top/devices/device[name=sw2]/config/address: mandatory leaf address is not set"},
		{"leafref dangling", []op{{"update", r1 + "/config/dev-ref", strVal("sw9")}}, ErrLeafref, "sw9"},
		{"leafref target removed", []op{
			{"update", r1 + "/config/dev-ref", strVal("sw1")},
			{"delete", "/top/devices/device[name=sw1]", nil},
		}, ErrLeafref, "still referenced"},
		{"bad json", []op{{"update", r1 + "/config", jsonVal(`{"device": `)}}, ErrBadValue, "JSON"},
		{"json wrong shape", []op{{"update", r1 + "/config", jsonVal(`["x"]`)}}, ErrBadValue, "object"},
		{"json unknown member", []op{{"update", r1 + "/config", jsonVal(`{"devise":"eth1"}`)}}, ErrUnknownPath, "devise"},
		{"json state member", []op{{"update", r1, jsonVal(`{"state":{"status":"installed"}}`)}}, ErrReadOnly, ""},
		{"later op fails", []op{
			{"update", r1 + "/config/device", strVal("eth9")},
			{"update", r1 + "/config/metric", uintVal(5000)},
		}, ErrBadValue, "5000"},
		{"dup leaf-list", []op{{"update", r1 + "/config/extra", jsonVal(`["10.0.0.0/8","10.0.0.0/8"]`)}}, ErrBadValue, "duplicate"},
		{"int64 overflow", []op{{"update", r1 + "/config/big", jsonVal(`"99999999999999999999"`)}}, ErrBadValue, "int64"},
		// "true" and "false" as strings are taken (TestBoolFromJSON); any
		// other string is not a boolean.
		{"bool as string", []op{{"update", r1 + "/config/on", jsonVal(`"yes"`)}}, ErrBadValue, "boolean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := apply(t, tr, false, c.ops...)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.in) {
				t.Fatalf("err %q does not mention %q", err, c.in)
			}
			if got := dump(tr); got != before {
				t.Fatalf("tree changed:\n%s\nwant:\n%s", got, before)
			}
		})
	}
}

func TestReplaceIsExact(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false, op{"update", r1 + "/config", jsonVal(`{"device":"eth0","metric":10,"tags":"a"}`)}); err != nil {
		t.Fatal(err)
	}
	ch, err := apply(t, tr, false, op{"replace", r1 + "/config", jsonVal(`{"device":"eth0","metric":20}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"del " + r1 + "/config/tags", "set " + r1 + "/config/metric=20"}
	if d := cmp.Diff(want, render(ch)); d != "" {
		t.Fatalf("replace changes (-want +got):\n%s", d)
	}
	// Replacing the list drops entries not named and keeps the named ones
	// without churn.
	if _, err := apply(t, tr, false, op{"update", "/top/routes/route[prefix=10.9.0.0/16][table=1]/config/device", strVal("eth1")}); err != nil {
		t.Fatal(err)
	}
	ch, err = apply(t, tr, false, op{"replace", "/top/routes", jsonVal(`{"kedge-test:route":[{"prefix":"10.0.0.0/24","table":254,"config":{"prefix":"10.0.0.0/24","table":254,"device":"eth0","metric":20}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range render(ch) {
		if !strings.Contains(c, "10.9.0.0/16") {
			t.Fatalf("replace touched a kept entry: %v", render(ch))
		}
	}
	if len(ch) != 5 {
		t.Fatalf("want 5 deletes for the dropped entry, got %v", render(ch))
	}
}

func TestStateWriter(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, true, op{"update", r1 + "/state/status", strVal("installed")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state for a missing config entry: %v", err)
	}
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, tr, true, op{"update", r1 + "/state/status", strVal("installed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, tr, true, op{"update", r1 + "/config/device", strVal("eth1")}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("state writer wrote config: %v", err)
	}
	if _, err := apply(t, tr, true, op{"update", "/top/sessions/session[id=s1]/state/peer", strVal("anchor")}); err != nil {
		t.Fatal(err)
	}
	// A config replace of the entry leaves its state alone.
	ch, err := apply(t, tr, false, op{"replace", r1 + "/config", jsonVal(`{"device":"eth2"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"set " + r1 + "/config/device=eth2"}, render(ch)); d != "" {
		t.Fatal(d)
	}
	// Deleting the config entry removes its state too.
	ch, err = apply(t, tr, false, op{"delete", r1, nil})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(render(ch), "del "+r1+"/state/status") {
		t.Fatalf("entry delete kept state: %v", render(ch))
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestWalkAndJSON(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false,
		op{"update", r1 + "/config", jsonVal(`{"device":"eth0","big":"-5","extra":["10.1.0.0/16"]}`)},
		op{"update", "/top/routes/route[prefix=10.2.0.0/16][table=254]/config/device", strVal("eth1")},
		op{"update", "/top/posture/config/level", uintVal(3)},
	); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := tr.Walk(p(t, "/top/routes/route[prefix=*][table=254]/config/device"), func(m Match) error {
		got = append(got, m.Path())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{r1 + "/config/device", "/top/routes/route[prefix=10.2.0.0/16][table=254]/config/device"}
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatal(d)
	}
	got = nil
	if err := tr.Walk(p(t, "/top/.../level"), func(m Match) error { got = append(got, m.Path()); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/top/posture/config/level"}, got); d != "" {
		t.Fatal(d)
	}
	if err := tr.Walk(p(t, "/top/routs"), func(Match) error { return nil }); !errors.Is(err, ErrUnknownPath) {
		t.Fatalf("walk typo: %v", err)
	}
	var js []byte
	_ = tr.Walk(p(t, r1+"/config"), func(m Match) error {
		js, _ = m.JSON(EncodeOpts{IETF: true})
		return nil
	})
	wantJS := `{"kedge-test:big":"-5","kedge-test:device":"eth0","kedge-test:extra":["10.1.0.0/16"],"kedge-test:prefix":"10.0.0.0/24","kedge-test:table":254}`
	if string(js) != wantJS {
		t.Fatalf("JSON_IETF:\n got %s\nwant %s", js, wantJS)
	}
	_ = tr.Walk(p(t, "/top/posture"), func(m Match) error {
		js, _ = m.JSON(EncodeOpts{})
		return nil
	})
	if string(js) != `{"config":{"level":3}}` {
		t.Fatalf("JSON: %s", js)
	}
	_ = tr.Walk(p(t, "/top/posture"), func(m Match) error {
		_, ok := m.JSON(EncodeOpts{Keep: func(n *Node) bool { return !n.Config }})
		if ok {
			t.Fatal("state filter kept config data")
		}
		return nil
	})
}

func TestParsePathRoundTrip(t *testing.T) {
	for _, s := range []string{
		"/top",
		"/top/routes/route[prefix=10.0.0.0/24][table=254]/config/device",
		`/top/devices/device[name=a\]b\\c]/config`,
	} {
		elems, err := ParsePath(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := RenderPath(elems); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	}
	for _, bad := range []string{"/a//b", "/a[k]", "/a[k=v", "/a/", "/a[=v]", "/a[k=1][k=2]", "/a[k=v]x"} {
		if _, err := ParsePath(bad); err == nil {
			t.Fatalf("ParsePath(%q) accepted", bad)
		}
	}
}

func TestOperationalEntries(t *testing.T) {
	tr := New(testSchema(t))
	dev := "/top/devices/device[name=auto1]"
	tx, _ := tr.Begin(true)
	if err := tx.Update(p(t, dev+"/state/reachable"), &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("strict state writer created an entry: %v", err)
	}
	tx.Rollback()
	tx, _ = tr.Begin(true)
	tx.OperationalEntries = true
	if err := tx.Update(p(t, dev+"/state/reachable"), &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	cfg := func(n *Node) bool { return n.Config }
	var shown []string
	_ = tr.Walk(p(t, "/top/devices"), func(m Match) error {
		if js, ok := m.JSON(EncodeOpts{Keep: cfg}); ok {
			shown = append(shown, string(js))
		}
		return nil
	})
	if len(shown) != 0 {
		t.Fatalf("operational entry shows in CONFIG: %v", shown)
	}
	// A config writer adopting it gets the config key mirror.
	if _, err := apply(t, tr, false, op{"update", dev + "/config/address", strVal("192.0.2.9")}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump(tr), dev+"/config/name=auto1") {
		t.Fatalf("adopted entry lacks its config key:\n%s", dump(tr))
	}
}

// A consumer caching what it derived from an instance relies on Stamp
// and on the instance's identity: the version of an instance in the
// current tree must change with every write of its own leaves and with
// nothing else, and an instance once read must never change.
func TestStampFollowsOwnLeaves(t *testing.T) {
	tr := New(testSchema(t))
	r2 := "/top/routes/route[prefix=10.0.1.0/24][table=254]"
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")},
		op{"update", r2 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	config := func(path string) *Inst {
		t.Helper()
		tg, ok, err := tr.Lookup(p(t, path+"/config/device"))
		if err != nil || !ok {
			t.Fatalf("lookup %s: %v %v", path, ok, err)
		}
		return tg.In
	}
	c1, c2 := config(r1), config(r2)
	s1, s2 := c1.Stamp(), c2.Stamp()
	if s1 == 0 || s2 == 0 {
		t.Fatalf("stamps of written instances are %d and %d, want non-zero", s1, s2)
	}
	// Rewriting the same value is no write.
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	if config(r1) != c1 || config(r1).Stamp() != s1 {
		t.Fatal("an unchanged value made a new version of the instance")
	}
	// A write to one entry moves only its stamp, and the version read
	// before keeps its values.
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/metric", uintVal(5)}); err != nil {
		t.Fatal(err)
	}
	if config(r1).Stamp() == s1 || config(r2) != c2 || config(r2).Stamp() != s2 {
		t.Fatalf("after writing r1: r1 %d→%d, r2 %d→%d", s1, config(r1).Stamp(), s2, config(r2).Stamp())
	}
	if c1.Get("metric").IsSet() || c1.Stamp() != s1 {
		t.Fatal("the version read before the write changed")
	}
	// State writes below an entry are another instance's leaves.
	c1 = config(r1)
	s1 = c1.Stamp()
	if _, err := apply(t, tr, true, op{"update", r1 + "/state/status", strVal("installed")}); err != nil {
		t.Fatal(err)
	}
	if config(r1) != c1 || config(r1).Stamp() != s1 {
		t.Fatal("a state write made a new version of the config instance")
	}
	// A failed transaction changes nothing at all.
	before := dump(tr)
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth1")},
		op{"update", r1 + "/config/metric", uintVal(1001)}); err == nil {
		t.Fatal("out-of-range metric accepted")
	}
	if dump(tr) != before || config(r1) != c1 {
		t.Fatal("a failed transaction changed the tree")
	}
}

// A bulk JSON list is created presized; a bad entry at its end must still
// leave no trace of the list or of the entries before it.
func TestBulkListRollsBack(t *testing.T) {
	tr := New(testSchema(t))
	before := dump(tr)
	var sb strings.Builder
	sb.WriteString(`{"route":[`)
	for i := range 300 {
		fmt.Fprintf(&sb, `{"prefix":"10.%d.%d.0/24","table":254,"config":{"prefix":"10.%d.%d.0/24","table":254,"device":"eth0"}},`, i/256, i%256, i/256, i%256)
	}
	sb.WriteString(`{"prefix":"10.200.0.0/24","table":254,"config":{"prefix":"10.200.0.0/24","table":254,"metric":5000}}]}`)
	if _, err := apply(t, tr, false, op{"update", "/top/routes", jsonVal(sb.String())}); err == nil {
		t.Fatal("out-of-range metric accepted")
	}
	if got := dump(tr); got != before {
		t.Fatalf("a failed bulk Set left:\n%s", got)
	}
	// And the same list without the bad entry applies whole.
	good := strings.Replace(sb.String(), `"metric":5000`, `"metric":5`, 1)
	if _, err := apply(t, tr, false, op{"update", "/top/routes", jsonVal(good)}); err != nil {
		t.Fatal(err)
	}
	if n := tr.Root().Sub("top").Sub("routes").Len("route"); n != 301 {
		t.Fatalf("%d routes, want 301", n)
	}
}
