package underlay

import (
	"slices"
	"strings"
	"testing"

	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func (e *env) waitReason(id, status, reason string) {
	e.t.Helper()
	e.waitFor("mutation "+id+" "+status+" ("+reason+")", func(t *tree.Tree) bool {
		return leaf(t, mstate(id, "status")) == status && strings.Contains(leaf(t, mstate(id, "reason")), reason)
	})
}

func (e *env) sets() int {
	n := 0
	for _, d := range e.devs {
		n += d.Stats().Sets
	}
	return n
}

// TestPostureWalk walks two devices through levels 5, 4, 3, 2, 1 and back
// to 5 (the seed's underlay table): every tier executes at 5 and 4; at 3
// an operator's proposal is compiled and waits while master's executes; at
// 2 the compiler is frozen, a new proposal waits uncompiled, and only a
// site-owner's emergency change prepared at 5 executes once released; at
// 1 nothing is compiled or dispatched and drift is only reported; back at
// 5 the queue drains in order and the drift is repaired.
func TestPostureWalk(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{})
	e.level(5)
	for _, id := range []int{10, 20, 30, 40, 50, 60, 70} {
		e.vlan(id, "sw1", "sw2")
	}
	// Emergency changes prepared at 5: compiled and held.
	e.propose("e-site", "site-owner", []int{60}, `"emergency":true`)
	e.propose("e-master", "master", []int{70}, `"emergency":true`)
	e.waitReason("e-site", "approved", "held until execute")
	e.waitReason("e-master", "approved", "held until execute")
	if e.get(mstate("e-site", "compiled")) == "" {
		t.Fatal("a prepared emergency change is not compiled")
	}

	// 5: an operator executes.
	e.propose("m1", "operator", []int{10}, "")
	e.waitStatus("m1", "executed")
	// 4: still.
	e.level(4)
	e.propose("m2", "operator", []int{20}, "")
	e.waitStatus("m2", "executed")
	if got := e.get(mstate("m2", "posture-level")); got != "4" {
		t.Errorf("m2 executed at level %s, want 4", got)
	}

	// 3: the operator's proposal is compiled and waits; master's executes.
	e.level(3)
	e.propose("m3", "operator", []int{30}, "")
	e.waitReason("m3", "proposed", "not operator")
	if e.get(mstate("m3", "compiled")) == "" {
		t.Error("level 3: the operator's proposal was not compiled")
	}
	e.propose("m4", "master", []int{40}, "")
	e.waitStatus("m4", "executed")
	for n, d := range e.devs {
		c := d.Config()
		if c.Vlan[30] != nil || !hasVLANs(c, 10, 20, 40) {
			t.Errorf("level 3: %s holds VLANs %v, want 10, 20, 40", n, vlanIDs(c))
		}
	}

	// 2: the compiler is frozen; only the site-owner's prepared emergency
	// change executes, once released.
	e.level(2)
	e.propose("m5", "site-owner", []int{50}, "")
	e.waitReason("m5", "proposed", "compiler is frozen")
	if e.get(mstate("m5", "compiled")) != "" {
		t.Error("level 2: a new proposal was compiled")
	}
	e.waitReason("m3", "proposed", "only pre-approved emergency")
	e.set("/kedge/underlay/mutations/mutation[id=e-site]/config/execute", `true`)
	e.waitStatus("e-site", "executed")
	e.set("/kedge/underlay/mutations/mutation[id=e-master]/config/execute", `true`)
	e.waitReason("e-master", "proposed", "site-owner, not master")
	for n, d := range e.devs {
		if c := d.Config(); !hasVLANs(c, 10, 20, 40, 60) {
			t.Errorf("level 2: %s holds VLANs %v, want 10, 20, 40, 60", n, vlanIDs(c))
		}
	}

	// 1: nothing is compiled or dispatched; drift is reported only.
	e.level(1)
	before := e.sets()
	e.propose("m6", "master", []int{10}, "")
	e.waitReason("m6", "proposed", "all underlay operations are frozen")
	for _, id := range []string{"m3", "m5", "e-master"} {
		e.waitReason(id, "proposed", "all underlay operations are frozen")
	}
	if err := e.devs["sw1"].Mutate(func(c *oc.Device) { c.GetVlan(10).Name = ygot.String("changed-on-the-cli") }); err != nil {
		t.Fatal(err)
	}
	e.waitFor("drift on sw1 reported", func(tr *tree.Tree) bool {
		return leaf(tr, dstate("sw1", "drift")) == "true" && strings.Contains(leaf(tr, dstate("sw1", "drift-paths")), "vlan-id=10")
	})
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := e.sets(); got != before {
		t.Errorf("level 1 dispatched %d Sets", got-before)
	}
	if n := e.devs["sw1"].Config().GetVlan(10).GetName(); n != "changed-on-the-cli" {
		t.Errorf("level 1 repaired the drift (name %q)", n)
	}
	if e.get("/kedge/underlay/state/drift-detected") != "true" || e.get(dstate("sw1", "drift-since")) == "" {
		t.Error("drift not in the underlay state")
	}

	// Back to 5: the queue drains in order, the drift is repaired.
	e.level(5)
	for _, id := range []string{"m3", "m5", "e-master", "m6"} {
		e.waitStatus(id, "executed")
	}
	e.waitFor("sw1 repaired", func(tr *tree.Tree) bool { return leaf(tr, dstate("sw1", "drift")) == "false" })
	for n, d := range e.devs {
		c := d.Config()
		if !hasVLANs(c, 10, 20, 30, 40, 50, 60, 70) {
			t.Errorf("back at 5: %s holds VLANs %v", n, vlanIDs(c))
		}
		if got := c.GetVlan(10).GetName(); got != "v10" {
			t.Errorf("%s VLAN 10 name %q after repair", n, got)
		}
	}
	// The queue ran in order of proposal.
	var seqs []string
	for _, id := range []string{"e-site", "e-master", "m1", "m2", "m3", "m4", "m5", "m6"} {
		seqs = append(seqs, e.get(mstate(id, "sequence")))
	}
	if !slices.Equal(seqs, []string{"1", "2", "3", "4", "5", "6", "7", "8"}) {
		t.Errorf("sequences %v", seqs)
	}
	// One notary record per executed mutation, and the repair.
	ids := e.rec.ids()
	for _, id := range []string{"m1", "m2", "m4", "e-site", "m3", "m5", "e-master", "m6"} {
		if !slices.Contains(ids, id) {
			t.Errorf("notary lacks %s: %v", id, ids)
		}
	}
	if !slices.ContainsFunc(ids, func(s string) bool { return strings.HasPrefix(s, "repair/sw1/") }) {
		t.Errorf("notary lacks the repair: %v", ids)
	}
}

func vlanIDs(c *oc.Device) []uint16 {
	var out []uint16
	for id := range c.Vlan {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// TestTightensBeforeTheStep: an escalation written to the tree takes
// effect at once, before the posture plan reaches the underlay step; a
// de-escalation waits for the step.
func TestTightensBeforeTheStep(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{})
	e.level(5)
	e.vlan(10, "sw1")
	e.set("/kedge/posture/config/level", "2")
	e.propose("m1", "site-owner", nil, "")
	e.waitReason("m1", "proposed", "posture level 2: the compiler is frozen")
	e.set("/kedge/posture/config/level", "5")
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if st := e.get(mstate("m1", "status")); st != "proposed" {
		t.Fatalf("loosened before the step: m1 %s", st)
	}
	e.level(5)
	e.waitStatus("m1", "executed")
}
