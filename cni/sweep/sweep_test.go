package sweep

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/cni/registry"
)

// fakeRegistry records removals and can fail one of them.
type fakeRegistry struct {
	pods    []registry.Pod
	removed []string
	failID  string
}

func (f *fakeRegistry) Pods(context.Context) ([]registry.Pod, error) {
	return slices.Clone(f.pods), nil
}

func (f *fakeRegistry) Remove(_ context.Context, cid, ifname string) error {
	id := cid + "/" + ifname
	if id == f.failID {
		return errors.New("boom")
	}
	f.removed = append(f.removed, id)
	return nil
}

func TestSweep(t *testing.T) {
	reg := &fakeRegistry{pods: []registry.Pod{
		{ContainerID: "alive", IfName: "eth0", Netns: "/ns/alive", HostIfName: "kdalive"},
		{ContainerID: "nsgone-linkup", IfName: "eth0", Netns: "/ns/gone1", HostIfName: "kdup"},
		{ContainerID: "nsup-linkgone", IfName: "eth0", Netns: "/ns/up", HostIfName: "kdgone"},
		{ContainerID: "leaked", IfName: "eth0", Netns: "/ns/gone2", HostIfName: "kdgone2"},
		{ContainerID: "leaked-chained", IfName: "eth1", Netns: "/ns/gone3"},
		{ContainerID: "fails", IfName: "eth0", Netns: "/ns/gone4", HostIfName: "kdgone4"},
	}, failID: "fails/eth0"}
	s := &Sweeper{
		Registry:    reg,
		NetnsExists: func(p string) bool { return p == "/ns/alive" || p == "/ns/up" },
		LinkExists:  func(n string) bool { return n == "kdalive" || n == "kdup" },
	}
	removed, err := s.Sweep(context.Background())
	if err == nil {
		t.Fatal("want the failed removal reported")
	}
	want := []string{"leaked/eth0", "leaked-chained/eth1"}
	if diff := cmp.Diff(want, removed); diff != "" {
		t.Fatalf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, reg.removed); diff != "" {
		t.Fatalf("registry removals (-want +got):\n%s", diff)
	}
	// A second pass over the converged registry removes nothing more.
	reg.pods = slices.DeleteFunc(reg.pods, func(p registry.Pod) bool { return slices.Contains(want, p.ID()) })
	reg.failID = ""
	reg.removed = nil
	removed, err = s.Sweep(context.Background())
	if err != nil || !slices.Equal(removed, []string{"fails/eth0"}) {
		t.Fatalf("second pass: %v %v", removed, err)
	}
}

func TestSweepNeedsRegistry(t *testing.T) {
	if _, err := (&Sweeper{}).Sweep(context.Background()); err == nil {
		t.Fatal("want error without a registry")
	}
}
