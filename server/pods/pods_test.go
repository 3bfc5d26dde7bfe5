package pods

import (
	"context"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// TestSweepRemovesLeaks: a registration whose namespace and host veth are
// both gone is deleted from the store; one with either left stays.
func TestSweepRemovesLeaks(t *testing.T) {
	st := yangtest.Store(t)
	var ops []store.Op
	for _, id := range []string{"leaked", "live-ns", "live-link"} {
		c := kedgepath.Root().Kedge().Pods().Pod(id, "eth0").Config()
		ops = append(ops, store.Update(c.Netns(), "/run/netns/"+id), store.Update(c.HostIfname(), "veth-"+id))
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: st, Logger: nil,
		NetnsExists: func(p string) bool { return p == "/run/netns/live-ns" },
		LinkExists:  func(n string) bool { return n == "veth-live-link" }})
	if got := s.Sweep(context.Background()); !slices.Equal(got, []string{"leaked/eth0"}) {
		t.Fatalf("removed %v, want [leaked/eth0]", got)
	}
	var left []string
	st.Read(func(tr *tree.Tree) error {
		for p := range kedgetree.Of(tr).Kedge().Pods().Pod().All() {
			id, _ := p.ContainerId()
			left = append(left, id)
		}
		return nil
	})
	slices.Sort(left)
	if !slices.Equal(left, []string{"live-link", "live-ns"}) {
		t.Errorf("left %v, want live-link and live-ns", left)
	}
}
