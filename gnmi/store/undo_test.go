package store

import (
	"context"
	"testing"
)

// TestUndoRestoresExactly commits each scenario with CommitUndoable,
// applies the stored inverse, and requires the tree to be exactly what it
// was before.
func TestUndoRestoresExactly(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCommit(t, s,
		upd(t, route(1)+"/config", js(`{"device":"eth0","metric":5,"extra":["10.0.0.0/8","10.1.0.0/16"]}`)),
		upd(t, route(2)+"/config/device", str("eth1")),
		upd(t, "/top/devices/device[name=sw1]/config/address", str("192.0.2.1")),
		upd(t, route(2)+"/config/dev-ref", str("sw1")),
	)
	scenarios := map[string][]Op{
		"change leaf":      {upd(t, route(1)+"/config/metric", js(`6`))},
		"add leaf":         {upd(t, route(1)+"/config/tags", str("x"))},
		"delete leaf":      {del(t, route(1)+"/config/device")},
		"create entry":     {upd(t, route(9)+"/config/device", str("eth9"))},
		"delete entry":     {del(t, route(1))},
		"delete+recreate":  {del(t, route(1)), upd(t, route(1)+"/config/device", str("eth7"))},
		"replace list":     {{Kind: OpReplace, Path: path(t, "/top/routes"), Val: js(`{"route":[{"prefix":"10.0.0.9/32","table":254,"config":{"device":"x"}}]}`)}},
		"leafref chain":    {del(t, route(2)), del(t, "/top/devices/device[name=sw1]")},
		"replace leaflist": {upd(t, route(1)+"/config/extra", js(`["10.2.0.0/16"]`))},
	}
	for name, ops := range scenarios {
		t.Run(name, func(t *testing.T) {
			before := dump(s)
			var undo []Op
			if _, err := s.CommitUndoable(context.Background(), ops, "test-undo", func(u []Op) ([]byte, error) {
				undo = u
				return []byte("x"), nil
			}); err != nil {
				t.Fatal(err)
			}
			if dump(s) == before {
				t.Fatal("scenario changed nothing")
			}
			if _, err := s.Commit(context.Background(), undo); err != nil {
				t.Fatalf("apply undo: %v", err)
			}
			if got := dump(s); got != before {
				t.Fatalf("after undo:\n%s\nwant:\n%s", got, before)
			}
			if m, _ := s.GetMeta("test-undo"); string(m) != "x" {
				t.Fatalf("meta %q", m)
			}
		})
	}
}
