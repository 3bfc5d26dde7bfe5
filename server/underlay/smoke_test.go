package underlay

import (
	"testing"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

func TestSmoke(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.propose("m1", "operator", []int{10}, "")
	e.waitStatus("m1", "executed")
	for _, n := range []string{"sw1", "sw2"} {
		if !hasVLANs(e.devs[n].Config(), 10) {
			t.Errorf("%s: %v", n, e.devs[n].Config().Vlan)
		}
	}
	e.waitFor("sw2 in sync", func(tr *tree.Tree) bool { return leaf(tr, dstate("sw2", "status")) == "in-sync" })
	t.Log(e.dump())
	_ = oc.Device{}
}
