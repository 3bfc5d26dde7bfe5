package kernel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"golang.org/x/sys/unix"
)

// Set makes the namespace match cfg: interfaces first (routes may use them),
// then rules and routes are added or replaced, and only then are Kedge's
// routes, rules and interfaces that cfg no longer has deleted. Items already
// as cfg wants them cause no kernel message, so Set twice is a no-op.
//
// Set returns the items' errors joined (each a *RouteError, *RuleError or
// *InterfaceError naming its item); one bad item never stops the others.
// The per-item outcome is in Status. A key present in cfg is never deleted,
// even when its item failed (the kernel keeps what it had for it).
//
// Set keeps its own copy of cfg's routes (for Sweep and for the next
// Set's fast path): the caller may reuse cfg's slices once it returns.
func (b *Backend) Set(ctx context.Context, cfg route.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Copy into the buffer of two Sets ago: prev still holds the last one.
	cfg.Routes = append(b.scratch.spareRoutes[:0], cfg.Routes...)
	b.scratch.spareRoutes = nil
	cloneMultipath(cfg.Routes)
	b.last = &cfg
	return b.set(ctx, cfg)
}

func (b *Backend) set(ctx context.Context, cfg route.Config) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	links, err := b.linkList()
	if err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	st := route.Status{Adopted: b.status.Adopted}
	b.dumped = false
	before := b.conn.Counters()
	var errs []error

	ifStatus, keepLinks, links, ifErrs := b.setInterfaces(cfg.Interfaces, links)
	st.Interfaces = ifStatus
	errs = append(errs, ifErrs...)

	b.setIndex(links)
	index := b.index

	ruleStatus, ruleKeep, ruleErrs := b.addRules(ctx, cfg.Rules)
	st.Rules = ruleStatus
	errs = append(errs, ruleErrs...)

	routeStatus, stale, added, routeErrs, err := b.addRoutes(ctx, cfg.Routes, index)
	// The routes lost with their links were planned against the cache
	// like every other (losing one turned the fast path off).
	clear(b.lost)
	b.lostWoke = time.Time{}
	clear(b.lostDown)
	st.Routes, st.Added, st.ReadKernel, st.Incremental = routeStatus, added, b.dumped, b.incremental
	errs = append(errs, routeErrs...)
	if err != nil {
		// The adds did not all happen, so nothing may be deleted yet.
		b.base, b.noBase = base{}, "the last Set failed: "+err.Error()
		b.status = st
		return errors.Join(append(errs, fmt.Errorf("set routes: %w", err))...)
	}

	removed, delErrs := b.deleteStaleRoutes(ctx, stale)
	st.Removed = removed
	errs = append(errs, delErrs...)
	errs = append(errs, b.deleteStaleRules(ctx, ruleKeep)...)
	errs = append(errs, b.deleteStaleInterfaces(links, keepLinks)...)
	if len(cfg.Interfaces) > 0 || len(b.links) != len(links) {
		// Interfaces were (or may have been) made or deleted: list them
		// again next time rather than trust the notifications' timing.
		b.dropLinks()
	}
	// The fast path may start from this Set only if it left the kernel
	// holding exactly this Config's routes (failed ones aside).
	b.prev.ok = b.prev.ordered && err == nil && len(delErrs) == 0 && removed == len(stale) && b.held == nil && b.cache != nil
	// A Patch may start from it only if every item is as cfg wants it.
	b.base = base{ok: len(errs) == 0 && b.held == nil && b.cache != nil}
	if len(errs) > 0 {
		b.noBase = fmt.Sprintf("the last Set left %d items failed", len(errs))
	}

	b.scratch.shed()
	after := b.conn.Counters()
	st.Messages, st.Sends = after.Messages-before.Messages, after.Sends-before.Sends
	st.Applied = time.Now()
	b.status = st
	b.log.Debug("set", "routes", len(cfg.Routes), "added", added, "removed", removed, "errors", len(errs))
	return errors.Join(errs...)
}

// cloneMultipath gives the routes' next-hop slices arrays of the
// backend's own, since the caller may reuse cfg's slices once Set returns
// and the next Set compares against these. Routes sharing one array (a
// group's routes) share one copy.
func cloneMultipath(routes []route.Route) {
	var copies map[*route.NextHop][]route.NextHop
	for i := range routes {
		mp := routes[i].Multipath
		if len(mp) == 0 {
			continue
		}
		if copies == nil {
			copies = map[*route.NextHop][]route.NextHop{}
		}
		c, ok := copies[&mp[0]]
		if !ok || len(c) != len(mp) {
			c = slices.Clone(mp)
			copies[&mp[0]] = c
		}
		routes[i].Multipath = c
	}
}

func kernelScope(s route.Scope) uint8 {
	switch s {
	case route.ScopeLink:
		return unix.RT_SCOPE_LINK
	case route.ScopeHost:
		return unix.RT_SCOPE_HOST
	}
	return unix.RT_SCOPE_UNIVERSE
}

// toKernel converts a normalized route; oif is 0 when no device is named.
func (b *Backend) toKernel(r route.Route, oif int) rtnl.Route {
	return rtnl.Route{Dst: r.Dst, Gateway: r.Gateway, OIF: oif, Table: r.Table,
		Priority: r.Metric, Src: r.Src, Scope: kernelScope(r.Scope),
		Protocol: b.proto, Type: unix.RTN_UNICAST}
}

// sameRoute reports whether the kernel route k already is the desired d.
func sameRoute(d, k rtnl.Route) bool {
	if len(d.Nexthops) > 0 {
		return k.Multipath && k.Type == d.Type && d.Src == k.Src &&
			slices.EqualFunc(d.Nexthops, k.Nexthops, func(dh, kh rtnl.Nexthop) bool {
				// A next hop named by its gateway alone gets the device
				// the kernel resolves.
				return dh.Gateway == kh.Gateway && dh.Hops == kh.Hops && (dh.OIF == 0 || dh.OIF == kh.OIF)
			})
	}
	if k.Multipath || k.Type != d.Type {
		return false
	}
	if d.OIF != 0 && d.OIF != k.OIF {
		return false
	}
	return d.Gateway == k.Gateway && d.Src == k.Src && d.Scope == k.Scope
}

func kernelKey(r rtnl.Route) route.Key {
	return route.Key{Table: r.Table, Dst: r.Dst, Metric: r.Priority}
}

// drainEvents applies the monitor's queued notifications to the caches:
// a link carrying Kedge routes going down or away (the kernel drops
// IPv4 routes on those without a route notification) and the kernel
// deleting a route of Kedge's make the cache forget those routes, as
// lost (links.go); someone else adding or replacing a Kedge route or
// key, an address deleted under Kedge's routes, a change the cache
// cannot follow or lost events drop the route cache (dropCache records
// why); a link event updates the link index (links.go). It reports
// whether any of that happened that a Set could repair, or a policy rule
// changed: then the kernel may no longer be what the last Set made it,
// or a failed route may now be possible, and the next Set repairs it. A
// route lost with a link that is down or away waits for it to be up.
func (b *Backend) drainEvents() (drift bool) {
	linked := false
	overflow, err := b.conn.Changes(func(ev rtnl.Event) {
		switch {
		case !ev.IsRoute && ev.Link != 0:
			b.linkEvent(ev)
			linked = true
		case !ev.IsRoute:
			switch ev.Type {
			case unix.RTM_NEWLINK, unix.RTM_DELLINK: // too short to name its link
				b.dropLinks()
				drift = true
			case unix.RTM_NEWRULE, unix.RTM_DELRULE:
				drift = true // Set reads the rules every time
			}
			// An address deleted changes Kedge's routes only through
			// their link, unless it is down already (a link being
			// deleted goes down first), or their source address
			// (routeCache.addrFree);
			// when one might, the cache goes whole: which routes the
			// kernel drops then (all of the link's when its last IPv4
			// address goes, or only those with the address as source)
			// is more than the event says.
			if ev.Removal && (ev.Type != unix.RTM_DELADDR || !b.cache.addrFree(ev.AddrLink, b.isDown(ev.AddrLink))) {
				b.dropCache("an address was deleted or a link went down")
				drift = true
			}
		case b.cache == nil:
		case ev.Route.Protocol == b.proto && ev.Type == unix.RTM_DELROUTE:
			// The kernel deleted a route of Kedge's (an IPv6 route whose
			// link went down or away, or the next hop of an IPv6
			// multipath route whose link went away, or someone else's
			// delete): the
			// cache follows, the route is lost until put back, and a
			// route the cache had already forgotten changes nothing.
			switch followed, removed := b.cache.forgetRoute(ev.Route); {
			case !followed:
				b.dropCache("someone else deleted a route of Kedge's the cache cannot follow")
				drift = true
			case removed:
				b.lose(kernelKey(ev.Route), b.names[ev.Route.OIF])
				drift = true
			}
		case ev.Route.Protocol == b.proto:
			b.dropCache("someone else changed a route of Kedge's protocol")
			drift = true
		default:
			if b.cache.has(kernelKey(ev.Route)) {
				b.dropCache("another protocol replaced a route of Kedge's")
				drift = true
			}
		}
	})
	if linked {
		// Unless it took routes of Kedge's with it that could be put
		// back (the cache is gone, or a lost route's device is there),
		// a link event leaves the kernel as the last Set or Patch made
		// it, and it can make a route possible only if one failed: with
		// every item installed there is nothing to repair or retry. (A
		// node making a veth per pod reconciled twice more per pod, each
		// reading every pod.) Judged once the events are applied: a
		// deleted link first goes down under its name.
		_, repairable := b.lostRepairable(b.index)
		drift = drift || b.cache == nil || !b.base.ok || repairable
	}
	if err != nil || overflow {
		b.dropCache("the monitor lost notifications")
		b.dropLinks()
		drift = true
	}
	return drift
}

// Watch calls drift whenever someone else changes what the last Set made
// (deletes or replaces a Kedge route, removes a policy rule, deletes an
// address under Kedge's routes, brings back up a link whose routes the
// kernel dropped when it went down or away) or may make a failed route
// possible (a link appears or comes up while an item failed), so the
// caller can Set again and repair it, as
// Tailscale's router restores the rules others remove. Kedge's own changes
// do not wake it. A route the kernel removed with its link that no Patch
// deleted within Options.LostGrace (the link stayed down or away) wakes it
// too, once per grace: the whole Set records the route as not installed.
// It returns nil when ctx is done, or the monitor's error.
func (b *Backend) Watch(ctx context.Context, drift func()) error {
	for ctx.Err() == nil {
		ready, err := b.conn.WaitChanges(250 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("watch namespace: %w", err)
		}
		b.mu.Lock()
		changed := false
		if ready {
			changed = b.drainEvents()
		}
		// A route lost with a link that stayed down or away past its
		// grace: the whole Set records it as not installed.
		changed = b.lostOverdue() || changed
		b.mu.Unlock()
		if changed {
			drift()
		}
	}
	return nil
}

// kernelRoutes returns Kedge's routes in the kernel, keyed. It keeps them
// cached between Sets and reads the kernel again only when drainEvents
// dropped the cache.
func (b *Backend) kernelRoutes() (*routeCache, error) {
	b.drainEvents()
	if b.cache != nil {
		return b.cache, nil
	}
	routes, err := b.conn.Routes(b.proto)
	if err != nil {
		return nil, err
	}
	b.dumped = true
	b.cache = newRouteCache(len(routes))
	for _, r := range routes {
		b.cache.put(r)
	}
	return b.cache, nil
}

// addRoutes creates or replaces every valid desired route that differs from
// the kernel, and returns the Kedge routes in the kernel whose key cfg does
// not have (stale). A key present in cfg is never stale, even if its item
// failed.
func (b *Backend) addRoutes(ctx context.Context, routes []route.Route, index map[string]int) (
	st []route.RouteStatus, stale []rtnl.Route, added int, errs []error, err error) {
	kernel, err := b.kernelRoutes()
	if err != nil {
		return nil, nil, 0, nil, err
	}
	sc := &b.scratch
	p := routePlan{norm: grow(sc.spareNorm, len(routes)), st: grow(sc.spareStatus, len(routes)),
		arena: sc.arena[:0], reqs: sc.reqs[:0], sent: sc.sent[:0], idx: sc.idx[:0]}
	b.incremental = b.fastPlan(routes, index, kernel, &p)
	if !b.incremental {
		p.reset()
		b.fullPlan(routes, index, kernel, &p)
	}
	st, stale = p.st, p.stale
	sc.arena, sc.reqs, sc.sent, sc.idx = p.arena, p.reqs, p.sent, p.idx
	results, err := b.conn.ExecEcho(ctx, p.reqs, b.batch, p.learn)
	b.settle(&p)
	unsent := map[int]bool{}
	for j, rerr := range results {
		i := p.idx[j]
		switch {
		case rerr == nil:
			added++
			if b.cache != nil {
				b.cache.put(p.sent[j])
			}
		case errors.Is(rerr, rtnl.ErrAckLost):
			b.dropCache("an add's outcome is unknown") // read the kernel next time
			st[i].State, st[i].Err = route.StateFailed, &route.RouteError{Route: routes[i], Err: fmt.Errorf("add route: %w", rerr)}
		case err != nil && errors.Is(rerr, err):
			// Never sent (socket failure or ctx done): the caller gets err
			// once, not once per route.
			unsent[i] = true
			st[i].State, st[i].Err = route.StateFailed, &route.RouteError{Route: routes[i], Err: fmt.Errorf("add route: not sent: %w", rerr)}
		default:
			st[i].State, st[i].Err = route.StateFailed, &route.RouteError{Route: routes[i], Err: classify("add route", rerr)}
		}
	}
	if err != nil {
		b.dropCache("a netlink exchange failed")
	}
	for i, s := range st {
		if s.Err != nil && !unsent[i] {
			errs = append(errs, s.Err)
		}
	}
	// This Set's routes become the fast path's reference; the previous
	// reference's buffers are reused by the next Set.
	sc.spareNorm, sc.spareStatus = b.prev.norm, b.prev.status
	if unsafe.SliceData(b.prev.routes) != unsafe.SliceData(routes) { // Sweep passes the same routes again
		sc.spareRoutes = b.prev.routes
	}
	b.prev = lastSet{routes: routes, norm: p.norm, status: st, linkEpoch: b.linkEpoch, ordered: p.ordered}
	return st, stale, added, errs, err
}

// routePlan is what a Set sends: the normalized routes, their status so
// far, the requests (in arena) with the route each installs and the index
// of its Config route, and the stale Kedge routes to delete afterwards.
type routePlan struct {
	norm  []route.Route
	st    []route.RouteStatus
	arena []byte
	reqs  []rtnl.Request
	sent  []rtnl.Route
	idx   []int
	stale []rtnl.Route
	// ordered: the routes are in strict key order (the fast path checks it
	// as it goes; a full plan checks it for the next Set).
	ordered bool
	// run is the gateways (by table) whose resolution an add echoes in
	// the current run of gateway-only adds (resolve.go).
	run map[gwKey]bool
	// last is the key of the run's last gateway-only add, if inRun.
	last  gwKey
	inRun bool
	// shared counts the gateway-only adds sent without an echo, which
	// take their run's device (settle): none, and there is nothing to
	// spread or to check the namespace for.
	shared int
}

func (p *routePlan) reset() {
	p.arena, p.reqs, p.sent, p.idx, p.stale = p.arena[:0], p.reqs[:0], p.sent[:0], p.idx[:0], nil
	clear(p.run)
	p.inRun, p.shared = false, 0
}

// fullPlan compares every route with the kernel.
func (b *Backend) fullPlan(routes []route.Route, index map[string]int, kernel *routeCache, p *routePlan) {
	sc := &b.scratch
	check := grow(sc.errs, len(routes))
	clear(check)
	if sc.keys == nil {
		sc.keys = make(map[route.Key]int, len(routes))
	}
	keys := sc.keys
	clear(keys)
	route.NormalizeRoutes(routes, p.norm, check, keys)
	sc.errs = check
	// The next Set may merge against this one only if it is in key order.
	p.ordered = true
	for i := 1; i < len(p.norm) && p.ordered; i++ {
		a, c := p.norm[i-1], p.norm[i]
		p.ordered = compareKey(route.Key{Table: a.Table, Dst: a.Dst, Metric: a.Metric}, route.Key{Table: c.Table, Dst: c.Dst, Metric: c.Metric}) < 0
	}
	for i, r := range routes {
		if check[i] != nil {
			p.st[i] = route.RouteStatus{State: route.StateFailed, Err: &route.RouteError{Route: r, Err: check[i]}}
			continue
		}
		b.planRoute(i, r, p.norm[i], index, kernel, p)
	}
	for k, r := range kernel.all() {
		if _, inCfg := keys[k]; !inCfg && (b.held == nil || !b.held.routes[k]) {
			p.stale = append(p.stale, r)
		}
	}
}

// planRoute plans one valid normalized route: nothing when the kernel
// already has it, else a create or replace request.
func (b *Backend) planRoute(i int, r, n route.Route, index map[string]int, kernel *routeCache, p *routePlan) {
	p.st[i] = route.RouteStatus{State: route.StateInstalled}
	oif := 0
	if n.Device != "" {
		var ok bool
		if oif, ok = index[n.Device]; !ok {
			p.st[i] = route.RouteStatus{State: route.StateFailed, Err: &route.RouteError{Route: r, Err: fmt.Errorf("%w %q", route.ErrUnknownDevice, n.Device)}}
			return
		}
	}
	want := b.toKernel(n, oif)
	if len(n.Multipath) > 0 {
		want.Nexthops = make([]rtnl.Nexthop, len(n.Multipath))
		for j, h := range n.Multipath {
			hop := rtnl.Nexthop{Gateway: h.Gateway, Hops: uint8(h.Weight - 1)}
			if h.Device != "" {
				var ok bool
				if hop.OIF, ok = index[h.Device]; !ok {
					p.st[i] = route.RouteStatus{State: route.StateFailed, Err: &route.RouteError{Route: r, Err: fmt.Errorf("%w %q", route.ErrUnknownDevice, h.Device)}}
					return
				}
			}
			want.Nexthops[j] = hop
		}
	}
	flags := uint16(rtnl.FlagCreate)
	if have, ok := kernel.get(kernelKey(want)); ok {
		if sameRoute(want, have) {
			return
		}
		flags = rtnl.FlagReplace
	}
	flags |= p.echoFlag(want) // learn the device the kernel resolves (resolve.go)
	var req rtnl.Request
	p.arena, req = rtnl.AppendRoute(p.arena, want, flags)
	p.reqs = append(p.reqs, req)
	p.sent = append(p.sent, want)
	p.idx = append(p.idx, i)
}

// grow returns s resized to n, reusing its array when it is big enough and
// leaving headroom when not, so a Config growing one route at a time does
// not reallocate every Set.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, n+n/4+16)
}

// classify maps kernel errnos to the package's sentinels, keeping the
// kernel's own message.
func classify(op string, err error) error {
	switch {
	case errors.Is(err, unix.ENETUNREACH):
		return fmt.Errorf("%s: %w: %w", op, route.ErrGatewayUnreachable, err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: %w: %w", op, route.ErrKeyTaken, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s: %w: %w", op, route.ErrUnknownDevice, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// deleteStaleRoutes removes the stale Kedge routes found by addRoutes.
func (b *Backend) deleteStaleRoutes(ctx context.Context, stale []rtnl.Route) (int, []error) {
	if len(stale) == 0 {
		return 0, nil
	}
	reqs := make([]rtnl.Request, len(stale))
	arena := make([]byte, 0, len(stale)*rtnl.RouteMsgSize)
	for i, r := range stale {
		arena, reqs[i] = rtnl.AppendDelRoute(arena, r)
	}
	results, err := b.conn.Exec(ctx, reqs, b.batch)
	removed := 0
	var errs []error
	for j, rerr := range results {
		switch {
		case rerr == nil, errors.Is(rerr, unix.ESRCH): // already gone is fine
			removed++
			if b.cache != nil {
				b.cache.del(kernelKey(stale[j]))
			}
		default:
			if errors.Is(rerr, rtnl.ErrAckLost) {
				b.dropCache("a delete's outcome is unknown")
			}
			r := stale[j]
			errs = append(errs, &route.RouteError{Route: fromKernel(r), Err: fmt.Errorf("delete stale route: %w", rerr)})
		}
	}
	if err != nil {
		b.dropCache("a netlink exchange failed")
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("delete stale routes: %w", err))
		}
	}
	return removed, errs
}

// fromKernel renders a kernel route for error messages.
func fromKernel(r rtnl.Route) route.Route {
	out := route.Route{Dst: r.Dst, Gateway: r.Gateway, Table: r.Table, Metric: r.Priority, Src: r.Src}
	if r.OIF != 0 {
		out.Device = fmt.Sprintf("ifindex-%d", r.OIF)
	}
	return out
}
