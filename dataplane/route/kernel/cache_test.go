package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestRepairsExternalChanges: between Sets the backend trusts its cache,
// which follows what the netlink monitor says others did: a route of
// Kedge's deleted, or the routes over a link that went down, are forgotten
// and the next Set puts them back without reading the kernel; a change it
// cannot follow (another protocol taking a key) makes it read the kernel,
// and foreign routes are never touched.
func TestRepairsExternalChanges(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	routes := []route.Route{
		{Dst: pfx("10.80.0.0/24"), Gateway: addr("10.0.0.2"), Device: n.Dev},
		{Dst: pfx("10.81.0.0/24"), Device: n.Dev, Table: 100},
	}
	cfg := route.Config{Routes: routes}
	set := func(step string) route.Status {
		t.Helper()
		if err := b.Set(ctx, cfg); err != nil {
			t.Fatalf("%s: set: %v", step, err)
		}
		checkKernel(t, n, routes)
		return b.Status()
	}
	set("first")
	if st := set("idle"); st.ReadKernel || st.Added != 0 {
		t.Errorf("idle Set: read kernel %t, added %d; want cache only, nothing added", st.ReadKernel, st.Added)
	}

	ip(t, "-n", n.NS, "route", "del", "10.80.0.0/24", "proto", "107")
	if st := set("after external delete"); st.ReadKernel || st.Added != 1 {
		t.Errorf("after external delete: read kernel %t, added %d; want the cache followed and 1 added", st.ReadKernel, st.Added)
	}

	// Link down drops IPv4 routes without any route notification.
	ip(t, "-n", n.NS, "link", "set", n.Dev, "down")
	ip(t, "-n", n.NS, "link", "set", n.Dev, "up")
	if st := set("after link flap"); st.ReadKernel || st.Added != 2 {
		t.Errorf("after link flap: read kernel %t, added %d; want the cache followed and 2 added", st.ReadKernel, st.Added)
	}

	// Another protocol takes one of our keys: we must notice and not fight it.
	ip(t, "-n", n.NS, "route", "replace", "10.80.0.0/24", "via", "10.0.0.3", "dev", n.Dev, "proto", "static")
	err := b.Set(ctx, cfg)
	if !errors.Is(err, route.ErrKeyTaken) {
		t.Errorf("after foreign replace: got %v, want ErrKeyTaken", err)
	}
	checkKernel(t, n, routes[1:])
	if got := ip(t, "-n", n.NS, "route", "show", "10.80.0.0/24"); got != "10.80.0.0/24 via 10.0.0.3 dev "+n.Dev+" proto static \n" {
		t.Errorf("foreign route changed: %q", got)
	}
}

// TestLinkCacheFollowsLinks: the backend lists links only when the
// monitor saw one change, so a device created, renamed or deleted between
// two Sets must still be seen by the second.
func TestLinkCacheFollowsLinks(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	late := route.Route{Dst: pfx("10.82.0.0/24"), Device: "late0"}
	cfg := route.Config{Routes: []route.Route{late}}
	if err := b.Set(ctx, cfg); !errors.Is(err, route.ErrUnknownDevice) {
		t.Fatalf("route on a missing device: got %v, want ErrUnknownDevice", err)
	}
	ip(t, "-n", n.NS, "link", "add", "late0", "type", "veth", "peer", "name", "late1")
	ip(t, "-n", n.NS, "link", "set", "late0", "up")
	if err := b.Set(ctx, cfg); err != nil {
		t.Fatalf("after the device appeared: %v", err)
	}
	checkKernel(t, n, cfg.Routes)

	// Renamed away: the name no longer resolves (the kernel keeps the
	// route on the renamed device; the backend must not think late0 exists).
	ip(t, "-n", n.NS, "link", "set", "late0", "down")
	ip(t, "-n", n.NS, "link", "set", "late0", "name", "other0")
	ip(t, "-n", n.NS, "link", "set", "other0", "up")
	if err := b.Set(ctx, cfg); !errors.Is(err, route.ErrUnknownDevice) {
		t.Fatalf("after the device was renamed away: got %v, want ErrUnknownDevice", err)
	}
	// Back under its name, at a new index after delete and re-create.
	ip(t, "-n", n.NS, "link", "del", "other0")
	ip(t, "-n", n.NS, "link", "add", "late0", "type", "veth", "peer", "name", "late1")
	ip(t, "-n", n.NS, "link", "set", "late0", "up")
	if err := b.Set(ctx, cfg); err != nil {
		t.Fatalf("after the device was re-created: %v", err)
	}
	checkKernel(t, n, cfg.Routes)
}

// TestWatchSeesDrift: Watch wakes its caller when someone else deletes a
// Kedge route or rule or takes the link down, and not for Kedge's own
// Sets; a Set after the wake-up repairs the kernel.
func TestWatchSeesDrift(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drift := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, func() { drift <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	routes := []route.Route{{Dst: pfx("10.83.0.0/24"), Device: n.Dev}, {Dst: pfx("10.84.0.0/24"), Gateway: addr("10.0.0.2")}}
	cfg := route.Config{Routes: routes, Rules: []route.Rule{{Priority: 1200, Dst: pfx("10.85.0.0/16"), Table: 100}}}
	set := func() {
		t.Helper()
		if err := b.Set(context.Background(), cfg); err != nil {
			t.Fatalf("set: %v", err)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-drift:
			t.Fatalf("%s woke the watch", what)
		case <-time.After(400 * time.Millisecond):
		}
	}
	woken := func(what string) {
		t.Helper()
		select {
		case <-drift:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not wake the watch", what)
		}
		for len(drift) > 0 {
			<-drift
		}
	}
	// settle waits until the watch has been silent for a second: the
	// kernel's link watcher reports a new or raised link's carrier up
	// to a second later, and IPv6 address events trail it, so events of
	// the test's own setup can reach the watch after it started
	// (TestWatchSeesDrift failed 2 runs in 8 under load that way, with
	// "Kedge's own Set woke the watch").
	settle := func() {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case <-drift:
			case <-time.After(time.Second):
				return
			case <-deadline:
				t.Fatal("the watch kept waking for 15 s with nothing changing")
			}
		}
	}
	settle()
	set()
	quiet("Kedge's own Set")
	ip(t, "-n", n.NS, "route", "del", "10.83.0.0/24", "proto", "107")
	woken("an outside route delete")
	set()
	checkKernel(t, n, routes)
	ip(t, "-n", n.NS, "rule", "del", "priority", "1200")
	woken("an outside rule delete")
	set()
	if got := ip(t, "-n", n.NS, "rule", "show", "priority", "1200"); !strings.Contains(got, "10.85.0.0/16") {
		t.Fatalf("rule not restored: %q", got)
	}
	ip(t, "-n", n.NS, "link", "set", n.Dev, "down")
	woken("a link going down")
	ip(t, "-n", n.NS, "link", "set", n.Dev, "up")
	woken("the link coming back")
	set()
	checkKernel(t, n, routes)
	settle()
	// Routes of other protocols are none of Kedge's business.
	ip(t, "-n", n.NS, "route", "add", "10.86.0.0/24", "dev", n.Dev, "proto", "static")
	quiet("a foreign route")
}

// TestWatchQuietForUnusedLinks: with every item installed, links that
// carry none of Kedge's routes appearing, coming up, going down and away
// (a veth per pod) leave nothing to repair and do not wake the watch;
// while a route has failed for want of its device, that device appearing
// does, and the Set it prompts installs the route.
func TestWatchQuietForUnusedLinks(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drift := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, func() { drift <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	// settle waits out the wake-ups of the namespace's own setup (carrier
	// and IPv6 address events trail a link by up to a second).
	settle := func() {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case <-drift:
			case <-time.After(time.Second):
				return
			case <-deadline:
				t.Fatal("the watch kept waking for 15 s with nothing changing")
			}
		}
	}
	cfg := route.Config{Routes: []route.Route{{Dst: pfx("10.87.0.0/24"), Device: n.Dev}}}
	if err := b.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	settle()
	for range 3 {
		host := "kp" + randHex(3)
		ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", "kq"+randHex(3))
		ip(t, "-n", n.NS, "link", "set", host, "up")
		ip(t, "-n", n.NS, "link", "set", host, "down")
		ip(t, "-n", n.NS, "link", "del", host)
	}
	select {
	case <-drift:
		t.Fatal("unused links woke the watch with every item installed")
	case <-time.After(400 * time.Millisecond):
	}
	// A route waiting for its device: the device appearing wakes it.
	dev := "kp" + randHex(3)
	cfg.Routes = append(cfg.Routes, route.Route{Dst: pfx("10.88.0.5/32"), Device: dev, Scope: route.ScopeLink})
	if err := b.Set(context.Background(), cfg); !errors.Is(err, route.ErrUnknownDevice) {
		t.Fatalf("set with a missing device: %v, want ErrUnknownDevice", err)
	}
	ip(t, "-n", n.NS, "link", "add", dev, "type", "veth", "peer", "name", "kq"+randHex(3))
	ip(t, "-n", n.NS, "link", "set", dev, "up")
	select {
	case <-drift:
	case <-time.After(5 * time.Second):
		t.Fatal("the missing device appearing did not wake the watch")
	}
	if err := b.Set(context.Background(), cfg); err != nil {
		t.Fatalf("set once the device is there: %v", err)
	}
	checkKernel(t, n, cfg.Routes)
}
