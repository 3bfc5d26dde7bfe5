package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// checkKernel compares the kernel, seen through both ip(8) and netlink, with
// the routes cfg asks for.
func checkKernel(t *testing.T, n testNet, routes []route.Route) {
	t.Helper()
	exp := want(routes, n.Dev)
	if diff := cmp.Diff(exp, ipShow(t, n.NS)); diff != "" {
		t.Errorf("ip route show (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(exp, nlShow(t, n.NS)); diff != "" {
		t.Errorf("netlink route list (-want +got):\n%s", diff)
	}
}

func TestProgramChangeRemove(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()

	v1 := []route.Route{
		{Dst: pfx("10.1.0.0/16"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.2.0.0/16"), Gateway: addr("10.0.0.2"), Device: n.Dev, Table: 100, Metric: 20},
		{Dst: pfx("10.3.0.0/24"), Device: n.Dev},
		{Dst: pfx("10.4.0.0/24"), Gateway: addr("10.0.0.2")}, // kernel picks the device
		{Dst: pfx("10.5.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev, Src: addr("10.0.0.1")},
		{Dst: pfx("0.0.0.0/0"), Gateway: addr("10.0.0.2"), Device: n.Dev, Table: 1000},
		{Dst: pfx("fd10::/64"), Gateway: addr("fd00::2"), Device: n.Dev},
		{Dst: pfx("fd11::/64"), Device: n.Dev, Table: 300, Metric: 5},
	}
	if err := b.Set(ctx, route.Config{Routes: v1}); err != nil {
		t.Fatalf("set v1: %v", err)
	}
	checkKernel(t, n, v1)
	for i, s := range b.Status().Routes {
		if s.State != route.StateInstalled {
			t.Errorf("route %s: state %s, err %v", v1[i], s.State, s.Err)
		}
	}

	// Change: new gateway/metric/source on some, drop some, add one.
	v2 := []route.Route{
		{Dst: pfx("10.1.0.0/16"), Gateway: addr("10.0.0.3"), Device: n.Dev},
		{Dst: pfx("10.2.0.0/16"), Gateway: addr("10.0.0.2"), Device: n.Dev, Table: 100, Metric: 30},
		{Dst: pfx("10.5.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.6.0.0/24"), Device: n.Dev, Scope: route.ScopeUniverse},
		{Dst: pfx("fd10::/64"), Device: n.Dev},
	}
	if err := b.Set(ctx, route.Config{Routes: v2}); err != nil {
		t.Fatalf("set v2: %v", err)
	}
	checkKernel(t, n, v2)
	if st := b.Status(); st.Removed != 5 {
		t.Errorf("removed = %d, want 5 (4 dropped keys + the old 10.2/16 metric 20)", st.Removed)
	}

	// Set again: a no-op.
	if err := b.Set(ctx, route.Config{Routes: v2}); err != nil {
		t.Fatalf("set v2 again: %v", err)
	}
	if st := b.Status(); st.Added != 0 || st.Removed != 0 {
		t.Errorf("second identical Set changed the kernel: added %d removed %d", st.Added, st.Removed)
	}

	// Remove everything.
	if err := b.Set(ctx, route.Config{}); err != nil {
		t.Fatalf("set empty: %v", err)
	}
	checkKernel(t, n, nil)
}

func TestForeignRoutesUntouched(t *testing.T) {
	n := newTestNet(t)
	// Foreign routes: same prefix in another table, and one holding the very
	// key Kedge will ask for.
	ip(t, "-n", n.NS, "route", "add", "10.7.0.0/16", "via", "10.0.0.2", "dev", n.Dev, "proto", "static", "table", "200")
	ip(t, "-n", n.NS, "route", "add", "10.8.0.0/16", "via", "10.0.0.2", "dev", n.Dev, "proto", "static")
	ip(t, "-n", n.NS, "route", "add", "10.9.0.0/16", "via", "10.0.0.2", "dev", n.Dev, "proto", "42")
	foreign := func() string {
		return ip(t, "-n", n.NS, "route", "show", "table", "all", "proto", "static") +
			ip(t, "-n", n.NS, "route", "show", "table", "all", "proto", "42")
	}
	before := foreign()

	b := newBackend(t, n.NS)
	routes := []route.Route{
		{Dst: pfx("10.7.0.0/16"), Gateway: addr("10.0.0.3"), Device: n.Dev},
		{Dst: pfx("10.8.0.0/16"), Gateway: addr("10.0.0.3"), Device: n.Dev}, // same key as a static route
	}
	err := b.Set(context.Background(), route.Config{Routes: routes})
	if !errors.Is(err, route.ErrKeyTaken) || !strings.Contains(err.Error(), "10.8.0.0/16") {
		t.Errorf("set: got %v, want ErrKeyTaken naming 10.8.0.0/16", err)
	}
	checkKernel(t, n, routes[:1])
	if err := b.Set(context.Background(), route.Config{}); err != nil {
		t.Fatalf("set empty: %v", err)
	}
	checkKernel(t, n, nil)
	if diff := cmp.Diff(before, foreign()); diff != "" {
		t.Errorf("foreign routes changed (-before +after):\n%s", diff)
	}
}

func TestBadInputRestApplied(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	good := []route.Route{
		{Dst: pfx("10.20.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.21.0.0/24"), Device: n.Dev},
	}
	bad := []struct {
		r    route.Route
		want error
		name string
	}{
		{route.Route{Dst: pfx("10.30.0.0/24"), Gateway: addr("192.168.77.1"), Device: n.Dev}, route.ErrGatewayUnreachable, "10.30.0.0/24"},
		{route.Route{Dst: pfx("10.31.0.0/24"), Gateway: addr("192.168.77.1")}, route.ErrGatewayUnreachable, "10.31.0.0/24"},
		{route.Route{Dst: pfx("10.32.0.0/24"), Device: "nosuchdev0"}, route.ErrUnknownDevice, "nosuchdev0"},
		{route.Route{Dst: pfx("10.33.0.0/24"), Device: n.Dev, Metric: 7}, route.ErrDuplicate, "10.33.0.0/24"},
		{route.Route{Dst: pfx("10.33.0.0/24"), Gateway: addr("10.0.0.2"), Metric: 7}, route.ErrDuplicate, "10.33.0.0/24"},
		{route.Route{Dst: pfx("10.34.0.0/24")}, route.ErrInvalid, "10.34.0.0/24"},
	}
	cfg := route.Config{Routes: []route.Route{good[0]}}
	for _, c := range bad {
		cfg.Routes = append(cfg.Routes, c.r)
	}
	cfg.Routes = append(cfg.Routes, good[1])

	err := b.Set(context.Background(), cfg)
	if err == nil {
		t.Fatal("set: no error for bad routes")
	}
	checkKernel(t, n, good)
	st := b.Status()
	for i, c := range bad {
		s := st.Routes[i+1]
		if s.State != route.StateFailed || !errors.Is(s.Err, c.want) || !strings.Contains(s.Err.Error(), c.name) {
			t.Errorf("route %s: state %s err %v, want failed with %v naming %s", c.r, s.State, s.Err, c.want, c.name)
		}
		if !strings.Contains(err.Error(), s.Err.Error()) {
			t.Errorf("joined error lacks %q", s.Err)
		}
	}
	t.Logf("joined error:\n%v", err)
	for _, i := range []int{0, len(cfg.Routes) - 1} {
		if s := st.Routes[i]; s.State != route.StateInstalled {
			t.Errorf("good route %s: state %s err %v", cfg.Routes[i], s.State, s.Err)
		}
	}
}

// ourRules lists the rules with Kedge's protocol, as ip(8) prints them
// (ip 6.1 does not filter rules by protocol itself).
func ourRules(t *testing.T, ns string) []string {
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		for line := range strings.Lines(ip(t, "-n", ns, fam, "rule", "show")) {
			if strings.Contains(line, " proto 107") {
				out = append(out, strings.TrimSpace(strings.Replace(line, " proto 107", "", 1)))
			}
		}
	}
	return out
}

func TestRules(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ip(t, "-n", n.NS, "rule", "add", "priority", "500", "from", "10.40.0.0/16", "lookup", "100") // foreign (boot)
	ip(t, "-n", n.NS, "rule", "add", "priority", "1000", "from", "10.1.0.0/16", "lookup", "100", "proto", "static")
	foreign := ip(t, "-n", n.NS, "rule", "show")

	rules := []route.Rule{
		{Priority: 1000, Src: pfx("10.1.0.0/16"), Table: 100},
		{Priority: 1001, Dst: pfx("10.2.0.0/16"), Table: 101, Mark: 0x10},
		{Priority: 1002, Mark: 0x20, Mask: 0xf0, Table: 102},
		{Priority: 1003, Src: pfx("fd00:1::/48"), Table: 103},
	}
	if err := b.Set(context.Background(), route.Config{Rules: rules}); err != nil {
		t.Fatalf("set rules: %v", err)
	}
	want := []string{
		"1000:\tfrom 10.1.0.0/16 lookup 100",
		"1001:\tfrom all to 10.2.0.0/16 fwmark 0x10 lookup 101",
		"1002:\tfrom all fwmark 0x20/0xf0 lookup 102",
		"1003:\tfrom fd00:1::/48 lookup 103",
	}
	if diff := cmp.Diff(want, ourRules(t, n.NS)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	// Change one, drop the others; the second Set is a no-op.
	rules = []route.Rule{{Priority: 1000, Src: pfx("10.1.0.0/16"), Table: 110}}
	for range 2 {
		if err := b.Set(context.Background(), route.Config{Rules: rules}); err != nil {
			t.Fatalf("set rules: %v", err)
		}
	}
	if diff := cmp.Diff([]string{"1000:\tfrom 10.1.0.0/16 lookup 110"}, ourRules(t, n.NS)); diff != "" {
		t.Errorf("rules after change (-want +got):\n%s", diff)
	}

	// The kernel deletes "from all" by wildcard match: removing it must not
	// take the more specific rule listed before it.
	specific := route.Rule{Priority: 1000, Src: pfx("10.1.0.0/16"), Table: 110}
	wide := route.Rule{Priority: 1000, Table: 110}
	for _, rs := range [][]route.Rule{{specific, wide}, {specific}} {
		if err := b.Set(context.Background(), route.Config{Rules: rs}); err != nil {
			t.Fatalf("set rules: %v", err)
		}
	}
	if diff := cmp.Diff([]string{"1000:\tfrom 10.1.0.0/16 lookup 110"}, ourRules(t, n.NS)); diff != "" {
		t.Errorf("rules after removing the wide one (-want +got):\n%s", diff)
	}

	if err := b.Set(context.Background(), route.Config{}); err != nil {
		t.Fatalf("set empty: %v", err)
	}
	if diff := cmp.Diff(foreign, ip(t, "-n", n.NS, "rule", "show")); diff != "" {
		t.Errorf("rules after clearing, foreign ones must stay (-before +after):\n%s", diff)
	}
}

// TestProtocolIsolation runs two backends with different protocol numbers on
// one namespace: each sees and removes only its own routes.
func TestProtocolIsolation(t *testing.T) {
	n := newTestNet(t)
	ours := newBackend(t, n.NS)
	other, err := kernel.New(kernel.Options{NetNS: n.NS, Protocol: 108})
	if err != nil {
		t.Fatalf("new backend: %v", err)
	}
	defer other.Close()
	ctx := context.Background()
	mine := []route.Route{{Dst: pfx("10.70.0.0/24"), Device: n.Dev}}
	theirs := []route.Route{{Dst: pfx("10.71.0.0/24"), Device: n.Dev}, {Dst: pfx("10.70.0.0/24"), Device: n.Dev, Table: 100}}
	if err := ours.Set(ctx, route.Config{Routes: mine}); err != nil {
		t.Fatal(err)
	}
	if err := other.Set(ctx, route.Config{Routes: theirs}); err != nil {
		t.Fatal(err)
	}
	if err := ours.Set(ctx, route.Config{Routes: mine}); err != nil {
		t.Fatal(err)
	}
	checkKernel(t, n, mine)
	got := ip(t, "-n", n.NS, "route", "show", "table", "all", "proto", "108")
	if !strings.Contains(got, "10.71.0.0/24") || !strings.Contains(got, "10.70.0.0/24 dev "+n.Dev+" table 100") {
		t.Errorf("protocol 108 routes:\n%s", got)
	}
	if _, err := kernel.New(kernel.Options{NetNS: n.NS, Protocol: 2}); err == nil {
		t.Error("protocol 2 (kernel) accepted")
	}
}

func TestCanceledContextChangesNothing(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Set(ctx, route.Config{Routes: []route.Route{{Dst: pfx("10.72.0.0/24"), Device: n.Dev}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("set: got %v, want context.Canceled", err)
	}
	checkKernel(t, n, nil)
}
