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
