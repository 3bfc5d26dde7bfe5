package tree

import "testing"

// Before sees each leaf as it was when the transaction began: changed,
// unchanged, created, deleted with its entry, and replaced wholesale.
func TestTxnBefore(t *testing.T) {
	tr := New(testSchema(t))
	const r1 = "/top/routes/route[prefix=10.1.0.0/16][table=1]"
	const r2 = "/top/routes/route[prefix=10.2.0.0/16][table=1]"
	if _, err := apply(t, tr, false,
		op{"update", r1 + "/config", jsonVal(`{"device":"eth1","metric":7}`)},
		op{"update", r2 + "/config", jsonVal(`{"device":"eth2"}`)}); err != nil {
		t.Fatal(err)
	}
	cfg := tr.Schema().Find("/top/routes/route/config")
	device, metric := cfg.Child("device"), cfg.Child("metric")
	entry := func(path string) Ident {
		t.Helper()
		tg, ok, err := tr.Lookup(p(t, path+"/config"))
		if err != nil || !ok {
			t.Fatalf("lookup %s: %v %v", path, ok, err)
		}
		return tg.In.Ident()
	}
	c1, c2 := entry(r1), entry(r2)

	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// Untouched instance: Before is the current value.
	if v := tx.Before(c1, device); v.Str() != "eth1" {
		t.Fatalf("untouched: %v", v)
	}
	if err := tx.Update(p(t, r1+"/config/device"), strVal("eth9")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(p(t, r2)); err != nil {
		t.Fatal(err)
	}
	const r3 = "/top/routes/route[prefix=10.3.0.0/16][table=1]"
	if err := tx.Update(p(t, r3+"/config/device"), strVal("eth3")); err != nil {
		t.Fatal(err)
	}
	c3 := entry(r3)
	for _, tc := range []struct {
		name string
		in   Ident
		n    *Node
		want string
	}{
		{"changed leaf", c1, device, "eth1"},
		{"unchanged leaf of a touched instance", c1, metric, "7"},
		{"leaf of a deleted entry", c2, device, "eth2"},
		{"leaf of a created entry", c3, device, ""},
	} {
		if got := tx.Before(tc.in, tc.n).String(); got != tc.want {
			t.Errorf("%s: Before = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := tr.Resolve(c1).Leaf(device).Str(); got != "eth9" {
		t.Fatalf("current value %q", got)
	}
	// Writes after the first Before are indexed too.
	if err := tx.Replace(p(t, r1+"/config"), jsonVal(`{"device":"eth5"}`)); err != nil {
		t.Fatal(err)
	}
	if got := tx.Before(c1, metric).String(); got != "7" {
		t.Fatalf("after replace: Before(metric) = %q, want 7", got)
	}
}
