package tree

import (
	"testing"
)

// Changes carry the value each leaf had before the transaction.
func TestChangesCarryOldValues(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	old := func(ch []Change) map[string]string {
		m := map[string]string{}
		for _, c := range ch {
			s := "<absent>"
			if c.Old.IsSet() {
				s = c.Old.String()
			}
			m[c.Path()] = s
		}
		return m
	}
	ch, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := old(ch)[r1+"/config/device"]; got != "eth0" || ch[0].Val.Str() != "eth1" {
		t.Errorf("update: old %q new %q, want eth0 eth1", got, ch[0].Val.Str())
	}
	ch, err = apply(t, tr, false, op{"delete", r1, nil})
	if err != nil {
		t.Fatal(err)
	}
	got := old(ch)
	for path, want := range map[string]string{r1 + "/config/device": "eth1", r1 + "/config/prefix": "10.0.0.0/24", r1 + "/table": "254"} {
		if got[path] != want {
			t.Errorf("delete: %s old %q, want %q", path, got[path], want)
		}
	}
	ch, err = apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := old(ch)[r1+"/config/device"]; got != "<absent>" {
		t.Errorf("create: old %q, want absent", got)
	}
}

// An entry deleted and created again in one transaction is a new
// instance: its deletes carry the old values and come first, its updates
// carry none. A snapshot taken before the transaction still reads the
// old values, and so does Before, by the old identity.
func TestChangesOldAcrossRecreate(t *testing.T) {
	tr := New(testSchema(t))
	if _, err := apply(t, tr, false, op{"update", r1 + "/config/device", strVal("eth0")}); err != nil {
		t.Fatal(err)
	}
	snap := tr.Snapshot()
	tg, ok, err := snap.Lookup(p(t, r1+"/config"))
	if err != nil || !ok {
		t.Fatalf("lookup: %v %v", ok, err)
	}
	oldCfg := tg.In.Ident()
	device := tg.In.Schema().Child("device")
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(p(t, r1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Update(p(t, r1+"/config/device"), strVal("eth1")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range tx.Changes() {
		if c.Node != device {
			continue
		}
		got = append(got, map[Op]string{OpUpdate: "update", OpDelete: "delete"}[c.Op]+" "+c.Old.String()+"->"+c.Val.String())
	}
	if len(got) != 2 || got[0] != "delete eth0->" || got[1] != "update ->eth1" {
		t.Fatalf("device changes %q, want the delete (old eth0) then the update (no old value)", got)
	}
	if v := tx.Before(oldCfg, device).Str(); v != "eth0" {
		t.Fatalf("Before by the old identity = %q, want eth0", v)
	}
	tx.Commit()
	if v := snap.Resolve(oldCfg).Leaf(device).Str(); v != "eth0" {
		t.Fatalf("the snapshot reads %q, want eth0", v)
	}
	if in := tr.Resolve(oldCfg); in != nil {
		t.Fatalf("the old identity resolves in the new version: %v", in.Ident().PathString())
	}
}
