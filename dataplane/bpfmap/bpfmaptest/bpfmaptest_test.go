package bpfmaptest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
)

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestRecordsAppliesAndFails(t *testing.T) {
	ctx := context.Background()
	var b Backend
	cfg := bpfmap.Config{Level: 1, Allowlist: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/8")}, CgroupPath: "/cg"}
	for range 2 {
		if err := b.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Allowlist[0] = netip.MustParsePrefix("192.0.2.0/24") // the fake must have copied
	want := State{Level: 1, Allowlist: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Cgroup: "/cg"}
	if diff := cmp.Diff(want, b.State(), cmpPrefix); diff != "" {
		t.Errorf("State (-want +got):\n%s", diff)
	}
	if b.Writes() != 1 {
		t.Errorf("Writes() = %d, want 1", b.Writes())
	}
	b.Fail(1, nil)
	if err := b.Set(ctx, bpfmap.Config{Level: 5}); !errors.Is(err, ErrInjected) {
		t.Errorf("Set after Fail = %v, want ErrInjected", err)
	}
	if err := b.Set(ctx, bpfmap.Config{Level: 0}); !errors.Is(err, bpfmap.ErrInvalidLevel) {
		t.Errorf("Set(level 0) = %v, want ErrInvalidLevel", err)
	}
	if n := len(b.Calls()); n != 4 {
		t.Errorf("%d calls recorded, want 4", n)
	}
}

func TestWatchSeesWriteLevel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b Backend
	if err := b.Set(ctx, bpfmap.Config{Level: 5}); err != nil {
		t.Fatal(err)
	}
	ch := b.Watch(ctx, time.Millisecond)
	if v := <-ch; v != 5 {
		t.Fatalf("first = %d, want 5", v)
	}
	b.WriteLevel(2)
	select {
	case v := <-ch:
		if v != 2 {
			t.Fatalf("Watch = %d, want 2", v)
		}
	case <-ctx.Done():
		t.Fatal("no change seen")
	}
}

// The fake and the real backend both fit the contract.
var (
	_ bpfmap.Backend = (*Backend)(nil)
	_ bpfmap.Backend = (*pinned.Backend)(nil)
)
