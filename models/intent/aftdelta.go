package intent

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// This file is gRIBI's part of RouteCache.Changes: the IP entries of
// /kedge/aft a commit added, replaced or deleted, and those whose next-hop
// group changed (found through the cache's index from group to entries),
// as puts and deletes of the change set, with the status of what is no
// route. A bulk load of gRIBI entries, which arrives in batches, then
// costs each reconcile what its batch changed rather than the table.
//
// What a change set cannot express goes whole: a session's record changed
// (its class and tier judge every entry it wrote), and any precedence in
// play (an entry whose destination a /kedge/routes entry, a pod, a mesh
// peer or another gRIBI entry holds too, before or after the change).

// aftChanges brings the AFT cache up to date with a: the entries to
// resolve again, and the next hops' and groups' states when their config
// changed. sideKeys are every pod and overlay route's key, sorted. whole
// says the change cannot be a change set; the cache is consistent then
// too, so the whole set starts from it.
func (c *RouteCache) aftChanges(a kedgetree.Kedge_Aft, sideKeys []sortKey) (chs []aftChange, states []AFTState, whole bool) {
	ac := &c.aft
	if a.Exists() || len(ac.byID) > 0 || len(ac.marked) > 0 {
		chs = ac.changes(a)
	}
	if ac.metaDirty {
		ac.metaDirty = false
		var nm aftMeta
		if a.Exists() {
			nm = readAFTMeta(a, true)
		}
		if !maps.Equal(nm.sessions, ac.meta.sessions) {
			return nil, nil, true
		}
		var regroup []uint64
		for id, g := range nm.groups {
			if og, ok := ac.meta.groups[id]; !ok || og.reason != g.reason || !slices.Equal(og.hops, g.hops) {
				regroup = append(regroup, id)
			}
		}
		for id := range ac.meta.groups {
			if _, ok := nm.groups[id]; !ok {
				regroup = append(regroup, id)
			}
		}
		if len(regroup) > 0 {
			seen := make(map[*aftCached]bool, len(chs))
			for _, ch := range chs {
				seen[ch.new] = true
			}
			for _, id := range regroup {
				for e := ac.groups[id]; e != nil; e = e.gnext {
					if !seen[e] {
						seen[e] = true
						chs = append(chs, aftChange{e, e})
					}
				}
			}
		}
		ac.meta, states = nm, nm.states
	}
	// Precedence: the full set decides who wins a shared destination.
	other := ac.otherHas(len(chs))
	for _, ch := range chs {
		for _, e := range [2]*aftCached{ch.old, ch.new} {
			if e != nil && e.perr == nil && (c.orderHas(e.key, nil, nil) || keysHave(sideKeys, e.key) || other(e.key, ch.old, ch.new)) {
				return nil, nil, true
			}
		}
	}
	if len(ac.order) > 0 && !slices.Equal(sideKeys, c.base.sideKeys) {
		for _, ks := range [2][]sortKey{sideKeys, c.base.sideKeys} {
			for _, k := range ks {
				if ac.has(k, nil, nil) {
					return nil, nil, true
				}
			}
		}
	}
	return chs, states, false
}

// aftPatch resolves the changed entries under a: the routes to put (in
// set order, with their origins), deletes and withheld entries into p and
// set, and the failed ones' status into set.AFT.
func (c *RouteCache) aftPatch(a accord.Accord, eps []endpoint, chs []aftChange, set *RouteSet, p *route.Patch,
	reasons *withholdReasons) ([]route.Route, []Origin) {
	// Room for every change: after a bulk load's batch nearly all are
	// puts, and growing the slices doubled what the batch allocated.
	put, putO := make([]route.Route, 0, len(chs)), make([]Origin, 0, len(chs))
	for _, ch := range chs {
		was := ch.old != nil && ch.old.inSet
		e := ch.new
		if e == nil {
			if was {
				p.Del = append(p.Del, route.Route{Dst: ch.old.dst, Table: aftTable})
			}
			continue
		}
		e.inSet = false
		o := Origin{AFT: AFTKey{Kind: e.kind, Prefix: e.prefix}, Stated: e.stated}
		res := c.aft.meta.resolve(e.dst, e.perr, e.nhg, e.session)
		if res.status != "" {
			set.AFT = append(set.AFT, AFTState{Key: o.AFT, Status: res.status, Reason: res.reason, Stated: e.stated})
		} else if ok, why := keepRoute(a, res.subj, eps); ok {
			put, putO = append(put, res.route), append(putO, o)
			e.inSet = true
			continue
		} else {
			set.Withheld = append(set.Withheld, Withheld{Dst: res.route.Dst, Table: res.route.Table, Reason: reasons.get(why), Origin: o})
		}
		if was {
			p.Del = append(p.Del, route.Route{Dst: ch.old.dst, Table: aftTable})
		}
	}
	if len(put) > 1 && !putsSorted(put, putO) {
		order := sortOrder(len(put), func(i int) (netip.Prefix, uint32) { return put[i].Dst, put[i].Table },
			func(i, j int) int { return compareOrigin(putO[i], putO[j]) })
		permute(order, func(i, j int) {
			put[i], put[j] = put[j], put[i]
			putO[i], putO[j] = putO[j], putO[i]
		})
	}
	return put, putO
}

// putsSorted reports whether puts are in set order already (sortOrder's,
// with their origins breaking ties), as the changes of a batch come
// (aftCache.changes sorts them).
func putsSorted(put []route.Route, putO []Origin) bool {
	prev := keyOf(put[0].Dst, put[0].Table)
	for i := 1; i < len(put); i++ {
		k := keyOf(put[i].Dst, put[i].Table)
		switch c := compareKeys(prev, k); {
		case c > 0:
			return false
		case c == 0 && compareOrigin(putO[i-1], putO[i]) > 0:
			return false
		}
		prev = k
	}
	return true
}

// keysHave reports whether sorted keys hold k.
func keysHave(keys []sortKey, k sortKey) bool {
	_, ok := slices.BinarySearchFunc(keys, k, compareKeys)
	return ok
}
