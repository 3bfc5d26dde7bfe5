package kernel_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/kernel"
)

// TestPatchMatchesKernel drives one backend through random Patches (routes
// added, changed, moved to another table, removed, IPv6 among them) after
// one full Set, checking the kernel after each: it must hold exactly the
// desired routes, as a full Set of them would leave it. A Patch after a
// failed item, after someone else deleted a route, or with one key twice
// is refused with ErrNoBase and changes nothing; a full Set then restores
// the base.
func TestPatchMatchesKernel(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	var pool []netip.Prefix
	for i := range 40 {
		pool = append(pool, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 91, byte(i / 8), byte(i%8) * 32}), 27))
	}
	for i := range 8 {
		pool = append(pool, netip.MustParsePrefix(fmt.Sprintf("fd91:%x::/64", i)))
	}
	variant := func(p netip.Prefix) route.Route {
		r := route.Route{Dst: p, Device: n.Dev}
		switch rng.IntN(4) {
		case 0:
			if p.Addr().Is4() {
				r.Gateway = addr("10.0.0.2")
			} else {
				r.Gateway = addr("fd00::2")
			}
		case 1:
			r.Metric = 50
		}
		return r
	}
	desired := map[netip.Prefix]route.Route{}
	setAll := func() {
		t.Helper()
		var cfg route.Config
		for _, r := range desired {
			cfg.Routes = append(cfg.Routes, r)
		}
		if err := b.Set(ctx, cfg); err != nil {
			t.Fatalf("set: %v", err)
		}
	}
	check := func(step int) {
		t.Helper()
		var rs []route.Route
		for _, r := range desired {
			rs = append(rs, r)
		}
		checkKernel(t, n, rs)
		if t.Failed() {
			t.Fatalf("step %d: kernel differs", step)
		}
	}
	for _, p := range pool[:20] {
		desired[p] = variant(p)
	}
	setAll()
	patched := 0
	for step := range 100 {
		var p route.Patch
		for range 1 + rng.IntN(3) {
			pf := pool[rng.IntN(len(pool))]
			if slicesHasDst(p.Put, pf) || slicesHasDst(p.Del, pf) {
				continue
			}
			old, had := desired[pf]
			switch {
			case had && rng.IntN(3) == 0:
				p.Del = append(p.Del, old)
				delete(desired, pf)
			default:
				r := variant(pf)
				p.Put = append(p.Put, r)
				if had && old.Key() != r.Key() {
					p.Del = append(p.Del, old) // another metric: another key
				}
				desired[pf] = r
			}
		}
		if err := b.Patch(ctx, p); err != nil {
			t.Fatalf("step %d: patch: %v", step, err)
		}
		st := b.Status()
		if !st.Patched || len(st.Routes) != len(p.Put) {
			t.Fatalf("step %d: status patched %t with %d routes, want %d", step, st.Patched, len(st.Routes), len(p.Put))
		}
		for i, s := range st.Routes {
			if s.State != route.StateInstalled {
				t.Fatalf("step %d: %s: %v %v", step, p.Put[i], s.State, s.Err)
			}
		}
		patched++
		check(step)

		switch step % 25 {
		case 10:
			// A failed item leaves no base: the next Patch is refused
			// and the full Set (which retries the item) restores it.
			bad := route.Route{Dst: pfx("10.92.0.0/24"), Device: "nosuchdev0"}
			if err := b.Patch(ctx, route.Patch{Put: []route.Route{bad}}); !errors.Is(err, route.ErrUnknownDevice) {
				t.Fatalf("step %d: patch with an unknown device: %v", step, err)
			}
			if err := b.Patch(ctx, route.Patch{}); !errors.Is(err, route.ErrNoBase) {
				t.Fatalf("step %d: patch after a failed item: %v, want ErrNoBase", step, err)
			}
			setAll()
		case 17:
			// Someone else deletes one of Kedge's routes: refused until a
			// full Set puts it back. (Not the route the Patch puts: that
			// one it may put back, and did when the map's order chose it.)
			r := variant(pool[len(pool)-1])
			for _, d := range desired {
				k := d.Key()
				if d.Dst == r.Dst {
					continue
				}
				ip(t, "-n", n.NS, "route", "del", k.Dst.String(), "metric", fmt.Sprint(k.Metric), "proto", "107")
				break
			}
			if err := b.Patch(ctx, route.Patch{Put: []route.Route{r}}); !errors.Is(err, route.ErrNoBase) {
				t.Fatalf("step %d: patch after an outside change: %v, want ErrNoBase", step, err)
			}
			setAll()
			check(step)
		case 20:
			r := variant(pool[len(pool)-2])
			if err := b.Patch(ctx, route.Patch{Put: []route.Route{r, r}}); !errors.Is(err, route.ErrNoBase) {
				t.Fatalf("step %d: patch with one key twice: %v, want ErrNoBase", step, err)
			}
			check(step) // nothing changed
			if err := b.Patch(ctx, route.Patch{}); err != nil {
				t.Fatalf("step %d: refused patch lost the base: %v", step, err)
			}
		}
	}
	if err := b.Sweep(ctx); !errors.Is(err, route.ErrNoBase) {
		t.Errorf("sweep after a patch: %v, want ErrNoBase", err)
	}
	if patched != 100 {
		t.Errorf("%d patches applied, want 100", patched)
	}
}

func slicesHasDst(rs []route.Route, p netip.Prefix) bool {
	for _, r := range rs {
		if r.Dst == p {
			return true
		}
	}
	return false
}

// TestPatchAfterNewLink: a link made after the last Set (a pod's veth)
// changes nothing Kedge installed, so a Patch still applies and can route
// through the new link; so does a down link going away; a link in use
// going down takes its route, and once it is up again a Patch not putting
// the route back is refused.
func TestPatchAfterNewLink(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	if err := b.Set(ctx, route.Config{Routes: []route.Route{{Dst: pfx("10.93.0.0/24"), Device: n.Dev}}}); err != nil {
		t.Fatal(err)
	}
	host, peer := "kp"+randHex(3), "kq"+randHex(3)
	ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", peer)
	ip(t, "-n", n.NS, "link", "set", host, "up")
	pod := route.Route{Dst: pfx("10.94.0.5/32"), Device: host, Scope: route.ScopeLink}
	if err := b.Patch(ctx, route.Patch{Put: []route.Route{pod}}); err != nil {
		t.Fatalf("patch through a new link: %v", err)
	}
	checkKernel(t, n, []route.Route{{Dst: pfx("10.93.0.0/24"), Device: n.Dev}, pod})
	// A pair that stays down, read by the backend, then deleted (as a
	// pod's peer leaves for the pod's namespace): no route can use it.
	down := "kx" + randHex(3)
	ip(t, "-n", n.NS, "link", "add", down, "type", "veth", "peer", "name", "ky"+randHex(3))
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch after a new down link: %v", err)
	}
	ip(t, "-n", n.NS, "link", "del", down)
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch after a down link went: %v", err)
	}
	// A link in use going down takes its route, which cannot be put back
	// until the link is up: then a Patch leaving it out is refused.
	ip(t, "-n", n.NS, "link", "set", host, "down") // the kernel drops the pod's route
	if err := b.Patch(ctx, route.Patch{}); err != nil {
		t.Fatalf("patch after a used link went down: %v", err)
	}
	ip(t, "-n", n.NS, "link", "set", host, "up")
	if err := b.Patch(ctx, route.Patch{}); !errors.Is(err, route.ErrNoBase) {
		t.Fatalf("patch after a used link came back up: %v, want ErrNoBase", err)
	}
}

// TestPatchAfterUnusedLinkDown: links that carry none of Kedge's routes
// (other pods' veths, a pod's own before its route) going down or away
// change nothing Kedge installed, even when the backend knew them up, so
// Patches keep applying; and a Patch resolves a new link from the
// monitor's events, not from a fresh list of every link. Before, a link
// the last list had up going down dropped the route cache (every later
// Patch was a whole Set until one ran), and every link event made the
// next Patch list all the links again (2,000 on a node with 1,000 pods).
func TestPatchAfterUnusedLinkDown(t *testing.T) {
	n := newTestNet(t)
	b := newBackend(t, n.NS)
	ctx := context.Background()
	base := route.Route{Dst: pfx("10.95.0.0/24"), Device: n.Dev}
	if err := b.Set(ctx, route.Config{Routes: []route.Route{base}}); err != nil {
		t.Fatal(err)
	}
	want := []route.Route{base}
	read := kernel.LinksRead(b)
	for i := range 3 {
		host, peer := "kp"+randHex(3), "kq"+randHex(3)
		ip(t, "-n", n.NS, "link", "add", host, "type", "veth", "peer", "name", peer)
		ip(t, "-n", n.NS, "link", "set", host, "up")
		pod := route.Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 96, 0, byte(i + 1)}), 32), Device: host, Scope: route.ScopeLink}
		if err := b.Patch(ctx, route.Patch{Put: []route.Route{pod}}); err != nil {
			t.Fatalf("pod %d: patch through a new link: %v", i, err)
		}
		want = append(want, pod)
		// An unused link the backend knows up goes down, then away.
		spare := "kz" + randHex(3)
		ip(t, "-n", n.NS, "link", "add", spare, "type", "veth", "peer", "name", "kw"+randHex(3))
		ip(t, "-n", n.NS, "link", "set", spare, "up")
		if err := b.Patch(ctx, route.Patch{}); err != nil {
			t.Fatalf("pod %d: patch after an unused link came up: %v", i, err)
		}
		ip(t, "-n", n.NS, "link", "set", spare, "down")
		if err := b.Patch(ctx, route.Patch{}); err != nil {
			t.Fatalf("pod %d: patch after an unused link went down: %v", i, err)
		}
		ip(t, "-n", n.NS, "link", "del", spare)
		if err := b.Patch(ctx, route.Patch{}); err != nil {
			t.Fatalf("pod %d: patch after an unused link went away: %v", i, err)
		}
		if st := b.Status(); !st.Patched || st.ReadKernel {
			t.Fatalf("pod %d: status patched %t, read the kernel %t", i, st.Patched, st.ReadKernel)
		}
	}
	checkKernel(t, n, want)
	if got := kernel.LinksRead(b); got != read {
		t.Errorf("patches listed the links %d times, want none (the index follows the events)", got-read)
	}
}
