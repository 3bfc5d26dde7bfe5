package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// TestPatchAfterUsedLinkGoes: a link carrying Kedge's routes going away
// (a pod's DEL: the CNI plugin deletes the veth, the kernel drops the
// pod's routes, then the Patch deleting them comes) or going down costs
// the cache only those routes: the Patch deleting them has nothing to
// do, a Patch adding a route over another link applies (so does one
// while the link is down or away: nothing can be put back over it), and
// once the link is back up a Patch that puts its routes back applies
// too, while one leaving them out is refused (the whole Set repairs it). IPv4
// routes go with their link without a notification, IPv6 ones with one,
// and the link's IPv6 link-local address goes too.
// Before, any such link dropped the whole cache and every one of these
// Patches was refused with ErrNoBase.
func TestPatchAfterUsedLinkGoes(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	// A pod's pair, both ends up: the host end gets an IPv6 link-local
	// address, whose deletion (after the link's routes) comes with
	// the link's.
	pair := func() string {
		host, peer := "kp"+randHex(3), "kq"+randHex(3)
		ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", peer)
		ip(t, "-n", n.NS, "link", "set", peer, "up")
		ip(t, "-n", n.NS, "link", "set", host, "up")
		waitFor(t, 5*time.Second, func() bool {
			return strings.Contains(ip(t, "-n", n.NS, "-6", "addr", "show", "dev", host), "fe80::")
		})
		return host
	}
	a, c := pair(), pair()
	base := route.Route{Dst: pfx("10.97.0.0/24"), Device: n.Dev}
	onA := []route.Route{{Dst: pfx("10.98.0.1/32"), Device: a, Scope: route.ScopeLink}, {Dst: pfx("fd98::1/128"), Device: a}}
	onC := []route.Route{{Dst: pfx("10.98.0.2/32"), Device: c, Scope: route.ScopeLink}, {Dst: pfx("fd98::2/128"), Device: c}}
	if err := b.Set(ctx, route.Config{Routes: append(append([]route.Route{base}, onA...), onC...)}); err != nil {
		t.Fatal(err)
	}
	patch := func(what string, p route.Patch) {
		t.Helper()
		if err := b.Patch(ctx, p); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if st := b.Status(); !st.Patched || st.ReadKernel {
			t.Fatalf("%s: status patched %t, read the kernel %t", what, st.Patched, st.ReadKernel)
		}
	}
	refused := func(what string) {
		t.Helper()
		if err := b.Patch(ctx, route.Patch{}); !errors.Is(err, route.ErrNoBase) {
			t.Fatalf("%s: %v, want ErrNoBase", what, err)
		}
	}

	// A pod's DEL: its veth goes, then its routes are deleted.
	ip(t, "-n", n.NS, "link", "del", a)
	patch("patch deleting the routes of a deleted link", route.Patch{Del: onA})
	more := route.Route{Dst: pfx("10.99.0.0/24"), Device: n.Dev}
	patch("patch adding a route after a used link went", route.Patch{Put: []route.Route{more}})
	checkKernel(t, n, append([]route.Route{base, more}, onC...))

	// A link that goes down loses its routes, which cannot be put back
	// until it is up again; then a Patch must put them back.
	ip(t, "-n", n.NS, "link", "set", c, "down")
	patch("patch while the routes' link is down", route.Patch{})
	checkKernel(t, n, []route.Route{base, more})
	ip(t, "-n", n.NS, "link", "set", c, "up")
	refused("patch leaving out the routes of a link back up")
	patch("patch putting back the routes of a link back up", route.Patch{Put: onC})
	checkKernel(t, n, append([]route.Route{base, more}, onC...))

	// A link deleted while its routes are still intended, then made
	// again under its name: nothing to put them back over until then.
	ip(t, "-n", n.NS, "link", "del", c)
	patch("patch while the routes' link is away", route.Patch{})
	checkKernel(t, n, []route.Route{base, more})
	ip(t, "-n", n.NS, "link", "add", c, "type", "veth", "peer", "name", "kq"+randHex(3))
	ip(t, "-n", n.NS, "link", "set", c, "up")
	refused("patch leaving out the routes of a link made again")
	patch("patch putting back the routes of a link made again", route.Patch{Put: onC})
	checkKernel(t, n, append([]route.Route{base, more}, onC...))
	if err := b.Set(ctx, route.Config{Routes: []route.Route{base, more, onC[0], onC[1]}}); err != nil {
		t.Fatalf("set after the patches: %v", err)
	}
	if st := b.Status(); st.ReadKernel || st.Added != 0 || st.Removed != 0 {
		t.Errorf("set after the patches read the kernel %t, added %d, removed %d; want none", st.ReadKernel, st.Added, st.Removed)
	}
}

// TestLostRouteOverdue: a route whose link went down and stayed down, and
// that no Patch deleted within the grace (it was not a pod's DEL), makes
// Watch report drift and Patch refuse, and the whole Set then records it
// as failed: the routes' state must not say installed for a route the
// kernel dropped. Within the grace a Patch leaving it alone applies.
func TestLostRouteOverdue(t *testing.T) {
	n := newTestNet(t)
	b, ctx, advance, drifts := watchedBackend(t, n)

	host, peer := "kp"+randHex(3), "kq"+randHex(3)
	ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", peer)
	ip(t, "-n", n.NS, "link", "set", peer, "up")
	ip(t, "-n", n.NS, "link", "set", host, "up")
	base := route.Route{Dst: pfx("10.97.0.0/24"), Device: n.Dev}
	onHost := route.Route{Dst: pfx("10.98.0.1/32"), Device: host, Scope: route.ScopeLink}
	cfg := route.Config{Routes: []route.Route{base, onHost}}
	if err := b.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the Set's own events read
	drainDrifts(drifts)

	ip(t, "-n", n.NS, "link", "set", host, "down")
	waitFor(t, 5*time.Second, func() bool { return !strings.Contains(ip(t, "-n", n.NS, "route"), "10.98.0.1") })
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch within the grace: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // two of Watch's rounds: no drift within the grace
	noDrift(t, drifts, "drift reported for a route lost within its grace, over a link that is down")

	advance(time.Second)
	awaitDrift(t, drifts, "no drift for a route lost past its grace")
	if err := b.Patch(ctx, route.Patch{}); !errors.Is(err, route.ErrNoBase) {
		t.Fatalf("patch past the grace: %v, want ErrNoBase", err)
	}
	if err := b.Set(ctx, cfg); err == nil {
		t.Fatal("whole Set over a down link: no item error")
	}
	st := b.Status()
	if len(st.Routes) != 2 || st.Routes[0].State != route.StateInstalled || st.Routes[1].State != route.StateFailed {
		t.Fatalf("statuses after the whole Set: %+v, want installed and failed", st.Routes)
	}
	// Asked once per grace, and not again once the Set has run.
	time.Sleep(600 * time.Millisecond)
	drainDrifts(drifts)
	advance(time.Second)
	time.Sleep(600 * time.Millisecond)
	noDrift(t, drifts, "drift again after the whole Set recorded the lost route")
}

// TestPatchReplacedRouteLeavesItsLink: a Patch moving a route to another
// link (the same key: the kernel replaces it) takes it off the first
// link in the cache, so that link going down and away costs nothing: a
// Patch leaving the route alone applies and the whole Set after finds
// every route where it is. (The cache adds a route a Patch created
// without looking for one to replace; a replaced one must be put.)
func TestPatchReplacedRouteLeavesItsLink(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	base := route.Route{Dst: pfx("10.94.0.0/24"), Device: n.Dev}
	if err := b.Set(ctx, route.Config{Routes: []route.Route{base}}); err != nil {
		t.Fatal(err)
	}
	spare := "kp" + randHex(3)
	ip(t, "-n", n.NS, "link", "add", spare, "type", "veth", "peer", "name", "kq"+randHex(3))
	ip(t, "-n", n.NS, "link", "set", spare, "up")
	moved := route.Route{Dst: pfx("10.94.1.1/32"), Device: spare, Scope: route.ScopeLink}
	if err := b.Patch(ctx, route.Patch{Put: []route.Route{moved}}); err != nil {
		t.Fatalf("patch over the spare link: %v", err)
	}
	moved.Device = n.Dev
	if err := b.Patch(ctx, route.Patch{Put: []route.Route{moved}}); err != nil {
		t.Fatalf("patch moving the route: %v", err)
	}
	ip(t, "-n", n.NS, "link", "set", spare, "down")
	ip(t, "-n", n.NS, "link", "del", spare)
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch after the route's old link went: %v", err)
	}
	checkKernel(t, n, []route.Route{base, moved})
	if err := b.Set(ctx, route.Config{Routes: []route.Route{base, moved}}); err != nil {
		t.Fatalf("set after the patches: %v", err)
	}
	if st := b.Status(); st.ReadKernel || st.Added != 0 || st.Removed != 0 {
		t.Errorf("set after the patches read the kernel %t, added %d, removed %d; want none", st.ReadKernel, st.Added, st.Removed)
	}
}
