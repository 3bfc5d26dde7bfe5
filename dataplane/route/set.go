package route

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// Set keeps cfg for Sweep: the caller must not modify it afterwards.
func (b *Backend) Set(ctx context.Context, cfg Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = &cfg
	return b.set(ctx, cfg)
}

func (b *Backend) set(ctx context.Context, cfg Config) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	links, err := b.linkList()
	if err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	st := Status{Adopted: b.status.Adopted}
	b.dumped = false
	before := b.conn.Counters()
	var errs []error

	ifStatus, keepLinks, links, ifErrs := b.setInterfaces(cfg.Interfaces, links)
	st.Interfaces = ifStatus
	errs = append(errs, ifErrs...)

	index := make(map[string]int, len(links))
	for _, l := range links {
		index[l.Name] = l.Index
	}

	ruleStatus, ruleKeep, ruleErrs := b.addRules(ctx, cfg.Rules)
	st.Rules = ruleStatus
	errs = append(errs, ruleErrs...)

	routeStatus, stale, added, routeErrs, err := b.addRoutes(ctx, cfg.Routes, index)
	st.Routes, st.Added, st.ReadKernel = routeStatus, added, b.dumped
	errs = append(errs, routeErrs...)
	if err != nil {
		// The adds did not all happen, so nothing may be deleted yet.
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
		b.links = nil
	}

	after := b.conn.Counters()
	st.Messages, st.Sends = after.Messages-before.Messages, after.Sends-before.Sends
	st.Applied = time.Now()
	b.status = st
	b.log.Debug("set", "routes", len(cfg.Routes), "added", added, "removed", removed, "errors", len(errs))
	return errors.Join(errs...)
}

func kernelScope(s Scope) uint8 {
	switch s {
	case ScopeLink:
		return unix.RT_SCOPE_LINK
	case ScopeHost:
		return unix.RT_SCOPE_HOST
	}
	return unix.RT_SCOPE_UNIVERSE
}

// toKernel converts a normalized route; oif is 0 when no device is named.
func (b *Backend) toKernel(r Route, oif int) rtnl.Route {
	return rtnl.Route{Dst: r.Dst, Gateway: r.Gateway, OIF: oif, Table: r.Table,
		Priority: r.Metric, Src: r.Src, Scope: kernelScope(r.Scope),
		Protocol: b.proto, Type: unix.RTN_UNICAST}
}

// sameRoute reports whether the kernel route k already is the desired d.
func sameRoute(d, k rtnl.Route) bool {
	if k.Multipath || k.Type != d.Type {
		return false
	}
	if d.OIF != 0 && d.OIF != k.OIF {
		return false
	}
	return d.Gateway == k.Gateway && d.Src == k.Src && d.Scope == k.Scope
}

func kernelKey(r rtnl.Route) Key { return Key{Table: r.Table, Dst: r.Dst, Metric: r.Priority} }

// drainEvents applies the monitor's queued notifications to the caches:
// someone else touching a Kedge route or key, a link going down or away or
// an address deleted (the kernel drops routes on those without a route
// notification) or lost events drop the route cache; any link event drops
// the link list.
func (b *Backend) drainEvents() {
	overflow, err := b.conn.Changes(func(ev rtnl.Event) {
		switch {
		case !ev.IsRoute:
			if ev.Type == unix.RTM_NEWLINK || ev.Type == unix.RTM_DELLINK {
				b.links = nil
			}
			if ev.Removal {
				b.cache = nil
			}
		case b.cache == nil:
		case ev.Route.Protocol == b.proto:
			b.cache = nil
		default:
			if _, ours := b.cache[kernelKey(ev.Route)]; ours {
				b.cache = nil // another protocol replaced one of ours
			}
		}
	})
	if err != nil || overflow {
		b.cache, b.links = nil, nil
	}
}

// linkList returns the namespace's links, from a cache kept true by the
// monitor: listing them costs more than a one-route Set's own messages.
// The caller must not modify the slice.
func (b *Backend) linkList() ([]rtnl.Link, error) {
	b.drainEvents()
	if b.links != nil {
		return b.links, nil
	}
	links, err := b.conn.Links()
	if err != nil {
		return nil, err
	}
	b.links = links
	return links, nil
}

// kernelRoutes returns Kedge's routes in the kernel, keyed. It keeps them
// cached between Sets and reads the kernel again only when drainEvents
// dropped the cache.
func (b *Backend) kernelRoutes() (map[Key]rtnl.Route, error) {
	b.drainEvents()
	if b.cache != nil {
		return b.cache, nil
	}
	routes, err := b.conn.Routes(b.proto)
	if err != nil {
		return nil, err
	}
	b.dumped = true
	b.cache = make(map[Key]rtnl.Route, len(routes))
	for _, r := range routes {
		b.cache[kernelKey(r)] = r
	}
	return b.cache, nil
}

// addRoutes creates or replaces every valid desired route that differs from
// the kernel, and returns the Kedge routes in the kernel whose key cfg does
// not have (stale). A key present in cfg is never stale, even if its item
// failed.
func (b *Backend) addRoutes(ctx context.Context, routes []Route, index map[string]int) (
	st []RouteStatus, stale []rtnl.Route, added int, errs []error, err error) {
	kernel, err := b.kernelRoutes()
	if err != nil {
		return nil, nil, 0, nil, err
	}
	sc := &b.scratch
	norm, check := grow(sc.norm, len(routes)), grow(sc.errs, len(routes))
	clear(check)
	if sc.keys == nil {
		sc.keys = make(map[Key]int, len(routes))
	}
	keys := sc.keys
	clear(keys)
	normalizeRoutes(routes, norm, check, keys)
	st = grow(b.status.Routes, len(routes))
	arena := sc.arena[:0]
	reqs, sent, reqIdx := sc.reqs[:0], sc.sent[:0], sc.idx[:0]
	defer func() {
		// Kept for the next Set: a one-route change to a big Config then
		// allocates almost nothing, which keeps GC off the latency tail.
		sc.norm, sc.errs, sc.arena, sc.reqs, sc.sent, sc.idx = norm, check, arena, reqs, sent, reqIdx
	}()
	for i, r := range routes {
		n := norm[i]
		st[i] = RouteStatus{State: StateInstalled}
		if check[i] != nil {
			st[i].State, st[i].Err = StateFailed, &RouteError{Route: r, Err: check[i]}
			continue
		}
		oif := 0
		if n.Device != "" {
			var ok bool
			if oif, ok = index[n.Device]; !ok {
				st[i].State = StateFailed
				st[i].Err = &RouteError{Route: r, Err: fmt.Errorf("%w %q", ErrUnknownDevice, n.Device)}
				continue
			}
		}
		want := b.toKernel(n, oif)
		flags := uint16(rtnl.FlagCreate)
		if have, ok := kernel[kernelKey(want)]; ok {
			if sameRoute(want, have) {
				continue
			}
			flags = rtnl.FlagReplace
		}
		var req rtnl.Request
		arena, req = rtnl.AppendRoute(arena, want, flags)
		reqs = append(reqs, req)
		sent = append(sent, want)
		reqIdx = append(reqIdx, i)
	}
	for k, r := range kernel {
		if _, inCfg := keys[k]; !inCfg && (b.held == nil || !b.held.routes[k]) {
			stale = append(stale, r)
		}
	}
	results, err := b.conn.Exec(ctx, reqs, b.batch)
	unsent := map[int]bool{}
	for j, rerr := range results {
		i := reqIdx[j]
		switch {
		case rerr == nil:
			added++
			if b.cache != nil {
				b.cache[kernelKey(sent[j])] = sent[j]
			}
		case errors.Is(rerr, rtnl.ErrAckLost):
			b.cache = nil // outcome unknown: read the kernel next time
			st[i].State, st[i].Err = StateFailed, &RouteError{Route: routes[i], Err: fmt.Errorf("add route: %w", rerr)}
		case err != nil && errors.Is(rerr, err):
			// Never sent (socket failure or ctx done): the caller gets err
			// once, not once per route.
			unsent[i] = true
			st[i].State, st[i].Err = StateFailed, &RouteError{Route: routes[i], Err: fmt.Errorf("add route: not sent: %w", rerr)}
		default:
			st[i].State, st[i].Err = StateFailed, &RouteError{Route: routes[i], Err: classify("add route", rerr)}
		}
	}
	if err != nil {
		b.cache = nil
	}
	for i, s := range st {
		if s.Err != nil && !unsent[i] {
			errs = append(errs, s.Err)
		}
	}
	return st, stale, added, errs, err
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
		return fmt.Errorf("%s: %w: %w", op, ErrGatewayUnreachable, err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: %w: %w", op, ErrKeyTaken, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s: %w: %w", op, ErrUnknownDevice, err)
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
				delete(b.cache, kernelKey(stale[j]))
			}
		default:
			if errors.Is(rerr, rtnl.ErrAckLost) {
				b.cache = nil
			}
			r := stale[j]
			errs = append(errs, &RouteError{Route: fromKernel(r), Err: fmt.Errorf("delete stale route: %w", rerr)})
		}
	}
	if err != nil {
		b.cache = nil
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("delete stale routes: %w", err))
		}
	}
	return removed, errs
}

// fromKernel renders a kernel route for error messages.
func fromKernel(r rtnl.Route) Route {
	out := Route{Dst: r.Dst, Gateway: r.Gateway, Table: r.Table, Metric: r.Priority, Src: r.Src}
	if r.OIF != 0 {
		out.Device = fmt.Sprintf("ifindex-%d", r.OIF)
	}
	return out
}
