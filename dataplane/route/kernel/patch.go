package kernel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
)

// base is what a Patch starts from: the kernel held exactly the desired
// routes when the last Set or Patch ended (every item installed, every
// stale route deleted, nothing held), and no link carrying Kedge's
// routes, nor any address, went since. A link event costs nothing else,
// and one taking Kedge's routes with it only those (links.go): their
// keys are lost, and a Patch applies as long as it puts or deletes every
// lost route that could be put back.
// The route cache, kept true by the monitor, then is the desired
// state, so a Patch plans its routes alone: a one-route change into
// 100,000 routes costs one map lookup and one message, not a walk of the
// Config (BenchmarkPatchVsSet in this package; BenchmarkRouteSingleInto100k
// in tests/ end to end). It is the backend's seam of the incremental
// route path, beside the fast plan (fastplan.go) that a full Set takes.
type base struct {
	ok      bool
	patched bool // a Patch ran since the last Set: that Config is no longer the desired state
}

// Patch applies p to the desired state (see route.Backend). It refuses
// with route.ErrNoBase, sending nothing, unless the last Set or Patch
// left the kernel exactly as desired and nobody changed it since.
func (b *Backend) Patch(ctx context.Context, p route.Patch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("patch routes: %w", err)
	}
	// A link event takes the base away only when it took routes of
	// Kedge's with it (links.go).
	b.drainEvents()
	why := b.noBase
	if why == "" {
		why = "the kernel is not known to be as desired"
	}
	switch {
	case b.held != nil:
		return fmt.Errorf("patch routes: adopted routes are held: %w", route.ErrNoBase)
	case b.last == nil:
		return fmt.Errorf("patch routes: no Set yet: %w", route.ErrNoBase)
	case b.cache == nil, !b.base.ok:
		return fmt.Errorf("patch routes: %s: %w", why, route.ErrNoBase)
	}
	// Device names resolve in the index the link events keep, not in a
	// fresh list of every link.
	index, err := b.linkIndex()
	if err != nil {
		return fmt.Errorf("patch routes: %w", err)
	}
	kernel := b.cache
	// Check everything before sending anything: a Patch the backend
	// cannot take whole changes nothing.
	sc := &b.scratch
	// The buffers for what is sent are sized for every route up front: a
	// bulk load's patches (72,000 routes of a gRIBI load's last) grew
	// them by doubling, a tenth of what the route backend allocated.
	// The checks keep the puts' keys, not their normalized routes: a route
	// is normalized again when it is planned.
	plan := routePlan{st: make([]route.RouteStatus, len(p.Put)),
		arena: slices.Grow(sc.arena[:0], len(p.Put)*rtnl.RouteMsgSize), reqs: slices.Grow(sc.reqs[:0], len(p.Put)),
		sent: slices.Grow(sc.sent[:0], len(p.Put)), idx: slices.Grow(sc.idx[:0], len(p.Put))}
	puts := putSet{keys: make([]route.Key, len(p.Put))}
	relisted := false
	for i, r := range p.Put {
		k := putKey(r)
		if !k.Dst.IsValid() || r.Check() != nil {
			return fmt.Errorf("patch routes: route %d: %w", i, route.ErrNoBase)
		}
		puts.keys[i] = k
		if !puts.add(i) {
			return fmt.Errorf("patch routes: %s twice: %w", k, route.ErrNoBase)
		}
		// Normalizing names no other device.
		if unknownDevice(r, index) != "" && !relisted {
			// The index may be behind a name reused under another
			// index (links.go): list the links once; a device still
			// missing fails its route, as in a Set.
			relisted = true
			b.dropLinks()
			if index, err = b.linkIndex(); err != nil {
				return fmt.Errorf("patch routes: %w", err)
			}
		}
	}
	// Routes the kernel removed (their link went down or away) are
	// patched from the cache like any other, a DEL's having nothing to
	// delete; one the Patch leaves alone that could be put back needs the
	// whole Config. (Only then are the deleted keys gathered: a bulk
	// change's Patch deletes up to 8,192 at once.)
	var dels map[route.Key]struct{}
	if len(b.lost) > 0 {
		dels = make(map[route.Key]struct{}, len(p.Del))
		for _, r := range p.Del {
			dels[r.Key()] = struct{}{}
		}
	}
	now := b.now()
	for k, l := range b.lost {
		put := puts.has(k)
		_, del := dels[k]
		switch {
		case put || del:
		case b.canPutBack(l.dev, index):
			return fmt.Errorf("patch routes: %s was removed by the kernel and can be put back: %w", k, route.ErrNoBase)
		case b.overdue(l, now):
			return fmt.Errorf("patch routes: %s was removed by the kernel %s ago and not deleted since (the whole Set records it as not installed): %w",
				k, now.Sub(l.at).Round(time.Millisecond), route.ErrNoBase)
		}
	}
	b.base.ok, b.base.patched, b.prev.ok = false, true, false // set again below if all goes well
	before := b.conn.Counters()
	for i, r := range p.Put {
		b.planRoute(i, r, r.Normalize(), index, kernel, &plan)
	}
	for _, r := range p.Del {
		k := r.Key()
		if puts.has(k) {
			continue
		}
		if kr, ok := kernel.get(k); ok {
			plan.stale = append(plan.stale, kr)
		}
	}
	st := plan.st
	sc.arena, sc.reqs, sc.sent, sc.idx = plan.arena, plan.reqs, plan.sent, plan.idx
	results, err := b.conn.ExecEcho(ctx, plan.reqs, b.batch, plan.learn)
	b.settle(&plan)
	var errs []error
	added := 0
	if b.cache != nil {
		b.cache.reserve(len(plan.sent))
	}
	for j, rerr := range results {
		i := plan.idx[j]
		switch {
		case rerr == nil:
			added++
			switch {
			case b.cache == nil:
			case created(plan.reqs[j]):
				b.cache.add(plan.sent[j])
			default:
				b.cache.put(plan.sent[j])
			}
		case errors.Is(rerr, rtnl.ErrAckLost), err != nil && errors.Is(rerr, err):
			b.dropCache("an add's outcome is unknown") // read the kernel next time
			st[i] = route.RouteStatus{State: route.StateFailed, Err: &route.RouteError{Route: p.Put[i], Err: fmt.Errorf("add route: %w", rerr)}}
		default:
			st[i] = route.RouteStatus{State: route.StateFailed, Err: &route.RouteError{Route: p.Put[i], Err: classify("add route", rerr)}}
		}
	}
	for _, s := range st {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	removed := 0
	if err != nil {
		b.dropCache("a netlink exchange failed")
		errs = append(errs, fmt.Errorf("patch routes: %w", err))
	} else {
		var delErrs []error
		removed, delErrs = b.deleteStaleRoutes(ctx, plan.stale)
		errs = append(errs, delErrs...)
	}
	b.scratch.shed()
	after := b.conn.Counters()
	b.status = route.Status{Routes: st, Adopted: b.status.Adopted, Added: added, Removed: removed,
		Messages: after.Messages - before.Messages, Sends: after.Sends - before.Sends,
		Incremental: true, Patched: true, Applied: time.Now()}
	b.base.ok = len(errs) == 0 && b.cache != nil
	if b.base.ok {
		for k := range b.lost {
			_, del := dels[k]
			if puts.has(k) || del {
				delete(b.lost, k)
			}
		}
	}
	if len(errs) > 0 {
		b.noBase = fmt.Sprintf("the last Patch left %d items failed", len(errs))
	}
	return errors.Join(errs...)
}

// created reports whether req creates its route (FlagCreate, not
// FlagReplace): planRoute found no route of its key in the cache.
func created(req rtnl.Request) bool { return req.Flags&rtnl.FlagReplace != rtnl.FlagReplace }

// unknownDevice returns the first device n names that index lacks.
func unknownDevice(n route.Route, index map[string]int) string {
	if _, ok := index[n.Device]; n.Device != "" && !ok {
		return n.Device
	}
	for _, h := range n.Multipath {
		if _, ok := index[h.Device]; h.Device != "" && !ok {
			return h.Device
		}
	}
	return ""
}
