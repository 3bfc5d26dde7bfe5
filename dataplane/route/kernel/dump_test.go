package kernel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// KernelRoutes reads back what the kernel holds, including a route someone
// else deleted behind the backend's back.
func TestKernelRoutesListsTheKernel(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	routes := []route.Route{
		{Dst: pfx("10.1.0.0/16"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.3.0.0/24"), Device: n.Dev, Table: 100, Metric: 7},
	}
	if err := b.Set(context.Background(), route.Config{Routes: routes}); err != nil {
		t.Fatal(err)
	}
	got, err := b.KernelRoutes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("10.1.0.0/16 table 254 metric 0 dev %s via 10.0.0.2", n.Dev),
		fmt.Sprintf("10.3.0.0/24 table 100 metric 7 dev %s", n.Dev),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("kernel routes (-want +got):\n%s", d)
	}
}
