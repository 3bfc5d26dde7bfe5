package underlay

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// flakyNotary refuses records while refuse is set, reporting each refused
// id on refused; it keeps what it accepted.
type flakyNotary struct {
	mu      sync.Mutex
	refuse  bool
	recs    []ExecutedMutation
	refused chan string
}

func newFlakyNotary() *flakyNotary { return &flakyNotary{refused: make(chan string, 1000)} }

func (f *flakyNotary) RecordUnderlay(_ context.Context, m ExecutedMutation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse {
		select {
		case f.refused <- m.ID:
		default: // every flush retries: the test needs only the first
		}
		return errors.New("notary down")
	}
	f.recs = append(f.recs, m)
	return nil
}

func (f *flakyNotary) setRefuse(v bool) {
	f.mu.Lock()
	f.refuse = v
	f.mu.Unlock()
}

// all returns the accepted records with an id prefix.
func (f *flakyNotary) all(prefix string) []ExecutedMutation {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ExecutedMutation
	for _, m := range f.recs {
		if strings.HasPrefix(m.ID, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) waitRefused(f *flakyNotary, prefix string) string {
	e.t.Helper()
	ctx := e.ctx()
	for {
		select {
		case id := <-f.refused:
			if strings.HasPrefix(id, prefix) {
				return id
			}
		case <-ctx.Done():
			e.t.Fatalf("the notary was never offered %s", prefix)
		}
	}
}

func changeAt(m ExecutedMutation, dev, path string) (DeviceChange, bool) {
	for _, c := range m.Changes {
		if c.Device == dev && c.Path == path {
			return c, true
		}
	}
	return DeviceChange{}, false
}

func canon(t *testing.T, js string) []byte {
	t.Helper()
	b, err := mu.Canonical([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const vlan10 = "/vlans/vlan[vlan-id=10]"

// What the notary gets says what the pushes changed, in canonical JSON:
// a container's Before is the After of the push that wrote it last, and
// a drift repair's Before is what it found on the device.
func TestNotaryGetsWhatPushesChanged(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.propose("m1", "operator", []int{10}, "")
	e.waitStatus("m1", "executed")
	e.set("/kedge/underlay/vlans/vlan[id=10]/config/name", `"renamed"`)
	e.propose("m2", "site-owner", []int{10}, "")
	e.waitStatus("m2", "executed")
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	recs := map[string]ExecutedMutation{}
	e.rec.mu.Lock()
	for _, m := range e.rec.recs {
		recs[m.ID] = m
	}
	e.rec.mu.Unlock()
	m1, m2 := recs["m1"], recs["m2"]
	if m1.Sequence == 0 || m2.Sequence <= m1.Sequence || m1.IntentSequence == 0 || m2.IntentSequence <= m1.IntentSequence ||
		m1.Level != 5 || m1.Tier != "operator" || m2.Tier != "site-owner" || m1.Proposer != "tester" || m1.Repair || m1.Failed || m1.Time.IsZero() {
		t.Fatalf("records: m1 %+v, m2 %+v", m1, m2)
	}
	for _, dev := range []string{"sw1", "sw2"} {
		c1, ok1 := changeAt(m1, dev, vlan10)
		c2, ok2 := changeAt(m2, dev, vlan10)
		if !ok1 || !ok2 {
			t.Fatalf("%s: VLAN 10 not in both records: m1 %+v, m2 %+v", dev, m1.Changes, m2.Changes)
		}
		if c1.Op != "replace" || c1.Before != nil || !bytes.Equal(c1.After, canon(t, `{"vlan-id":10,"config":{"vlan-id":10,"name":"v10","status":"ACTIVE"}}`)) {
			t.Errorf("%s m1: %s before %s after %s", dev, c1.Op, c1.Before, c1.After)
		}
		if !bytes.Equal(c2.Before, c1.After) || !bytes.Contains(c2.After, []byte(`"renamed"`)) {
			t.Errorf("%s m2: before %s (m1's after %s), after %s", dev, c2.Before, c1.After, c2.After)
		}
	}

	// Drift behind Kedge's back, repaired at 5.
	if err := e.devs["sw1"].Mutate(func(c *oc.Device) { c.GetVlan(10).Name = ygot.String("cli") }); err != nil {
		t.Fatal(err)
	}
	if err := e.devs["sw1"].WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(10).GetName() == "renamed" }); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the repair recorded", func(*tree.Tree) bool { return len(e.recsWith("repair/sw1/")) > 0 })
	r := e.recsWith("repair/sw1/")[0]
	c, ok := changeAt(r, "sw1", vlan10)
	c2, _ := changeAt(m2, "sw1", vlan10)
	if !r.Repair || r.Sequence != 0 || r.Tier != "master" || r.Level != 5 || !ok || !bytes.Contains(c.Before, []byte(`"cli"`)) ||
		!bytes.Equal(c.After, c2.After) {
		t.Errorf("repair record %+v, VLAN 10 change %s -> %s", r, c.Before, c.After)
	}
}

// recsWith returns the recording notary's records with an id prefix.
func (e *env) recsWith(prefix string) []ExecutedMutation {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	var out []ExecutedMutation
	for _, m := range e.rec.recs {
		if strings.HasPrefix(m.ID, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// A mutation that failed on one device after another took it is recorded
// as failed, with the changes that stayed.
func TestNotaryGetsPartialFailure(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.devs["sw2"].SetFault(faultReject)
	e.propose("m1", "operator", []int{10}, "")
	e.waitStatus("m1", "failed")
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	rs := e.recsWith("m1")
	if len(rs) != 1 || !rs[0].Failed || !strings.Contains(rs[0].Reason, "sw2") {
		t.Fatalf("records %+v", rs)
	}
	for _, c := range rs[0].Changes {
		if c.Device != "sw1" {
			t.Errorf("a change on %s, which refused: %+v", c.Device, c)
		}
	}
	if _, ok := changeAt(rs[0], "sw1", vlan10); !ok {
		t.Errorf("sw1's VLAN 10 missing: %+v", rs[0].Changes)
	}
}

// A notary that refuses is offered the same records again, across a
// restart: the executed mutation (from its record) and the drift repair
// (kept in a record of its own); repair numbers are not reused after the
// restart.
func TestNotaryRefusalsSurviveRestart(t *testing.T) {
	fn := newFlakyNotary()
	fn.setRefuse(true)
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{Notary: fn})
	e.level(5)
	e.vlan(10, "sw1")
	e.propose("m1", "operator", []int{10}, "")
	e.waitStatus("m1", "executed")
	e.waitRefused(fn, "m1")
	if err := e.devs["sw1"].Mutate(func(c *oc.Device) { c.GetVlan(10).Name = ygot.String("cli") }); err != nil {
		t.Fatal(err)
	}
	repair := e.waitRefused(fn, "repair/sw1/")
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	fn.setRefuse(false)
	e.start()
	e.level(5)
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := fn.all("m1"); len(got) != 1 || got[0].Sequence != 1 || len(got[0].Changes) == 0 {
		t.Fatalf("m1 after the restart: %+v", got)
	}
	got := fn.all("repair/")
	if len(got) != 1 || got[0].ID != repair || !got[0].Repair || len(got[0].Changes) == 0 {
		t.Fatalf("repairs after the restart: %+v (refused %s)", got, repair)
	}
	// Another repair after the restart takes a new number.
	if err := e.devs["sw1"].Mutate(func(c *oc.Device) { c.GetVlan(10).Name = ygot.String("cli-again") }); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a second repair recorded", func(*tree.Tree) bool { return len(fn.all("repair/")) == 2 })
	if ids := fn.all("repair/"); ids[1].ID == ids[0].ID {
		t.Errorf("a repair number reused after a restart: %s", ids[1].ID)
	}
	// Once recorded, nothing is offered again.
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.level(5)
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if n := len(fn.all("")); n != 3 {
		t.Errorf("%d records after a second restart, want 3", n)
	}
}
