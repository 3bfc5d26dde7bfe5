package intent

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// aftCache is RouteCache's part for gRIBI's IP entries (/kedge/aft): the
// translation of each entry (prefix, group, session) kept between intents
// in key order, so after a batch of injections only the new entries are
// read and sorted. Next hops, groups and sessions are few and read every
// time; each entry's route is resolved through them every time, which is
// map lookups. It learns what changed like RouteCache: from Observe when
// it has seen every commit, else by walking every entry and re-reading
// those whose config instance's Stamp moved. Like RouteCache it knows
// entries by identity (tree.Ident), which every version shares, and
// finds an entry it must read again in the version the intent reads.
//
// What it saves: the gRIBI path's reconciler re-read and re-sorted every
// injected entry on each reconcile of a bulk load (140-410 ms per
// reconcile at 20,000-100,000 entries; BenchmarkGRIBI100k in tests/).
type aftCache struct {
	byID  map[tree.Ident]*aftCached
	order []*aftCached // live entries in key order
	// dirty: entries whose config changed (or that went); restate:
	// entries whose state status changed, to read again only that.
	dirty, restate map[tree.Ident]struct{}
	gen            uint64
}

type aftCached struct {
	kind       AFTKind
	prefix     string
	dst        netip.Prefix
	perr       error
	nhg        uint64
	session    string
	key        sortKey
	id         tree.Ident
	config     *tree.Inst
	stamp, gen uint64
	stated     bool
}

// The schema paths aftCache.observe looks for.
var (
	aftV4Path      = kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4EntryAny().SchemaPath()
	aftV6Path      = kedgepath.Root().Kedge().Aft().Ipv6Entries().Ipv6EntryAny().SchemaPath()
	aftV4Status    = kedgepath.Root().Kedge().Aft().Ipv4Entries().Ipv4EntryAny().State().Status().SchemaPath()
	aftV6Status    = kedgepath.Root().Kedge().Aft().Ipv6Entries().Ipv6EntryAny().State().Status().SchemaPath()
	aftStatusPaths = [2]string{aftV4Status, aftV6Status}
)

// observe marks the IP entries a commit touched: their config, or their
// state status (the cache remembers which entries have one).
func (c *aftCache) observe(state bool, changes []tree.Change) {
	for _, ch := range changes {
		p := ch.Node.Path
		var list string
		switch {
		case strings.HasPrefix(p, aftV4Path+"/"):
			list = aftV4Path
		case strings.HasPrefix(p, aftV6Path+"/"):
			list = aftV6Path
		default:
			continue
		}
		if state && p != aftStatusPaths[0] && p != aftStatusPaths[1] {
			continue
		}
		e := ch.In
		for !e.IsZero() && e.Schema().Path != list {
			e = e.Parent()
		}
		switch {
		case e.IsZero():
		case state:
			if c.restate == nil {
				c.restate = map[tree.Ident]struct{}{}
			}
			c.restate[e] = struct{}{}
		default:
			if c.dirty == nil {
				c.dirty = map[tree.Ident]struct{}{}
			}
			c.dirty[e] = struct{}{}
		}
	}
}

// entries brings the cache in line with a and calls fn with every live
// entry in key order; incremental says whether only the dirty entries
// need reading.
func (c *aftCache) entries(a kedgetree.Kedge_Aft, incremental, full bool, fn func(e *aftCached)) {
	if c.byID == nil {
		c.byID = map[tree.Ident]*aftCached{}
	}
	c.gen++
	var fresh []*aftCached
	changed := false
	read := func(kind AFTKind, entry *tree.Inst, cfg *tree.Inst, prefix string, nhg uint64, session string, st bool) *aftCached {
		e := &aftCached{kind: kind, prefix: prefix, nhg: nhg, session: session, id: entry.Ident(), config: cfg,
			stamp: cfg.Stamp(), gen: c.gen, stated: st}
		e.dst, e.perr = netip.ParsePrefix(prefix)
		e.dst = e.dst.Masked()
		e.key = keyOf(e.dst, aftTable)
		return e
	}
	readV4 := func(in kedgetree.Kedge_Aft_Ipv4Entries_Ipv4Entry) *aftCached {
		cfg := in.Config()
		if !cfg.Exists() {
			return nil
		}
		p, _ := cfg.Prefix()
		nhg, _ := cfg.NextHopGroup()
		s, _ := cfg.Session()
		return read(AFTIPv4, in.Inst(), cfg.Inst(), p, nhg, s, full && stated(in.State().Status()))
	}
	readV6 := func(in kedgetree.Kedge_Aft_Ipv6Entries_Ipv6Entry) *aftCached {
		cfg := in.Config()
		if !cfg.Exists() {
			return nil
		}
		p, _ := cfg.Prefix()
		nhg, _ := cfg.NextHopGroup()
		s, _ := cfg.Session()
		return read(AFTIPv6, in.Inst(), cfg.Inst(), p, nhg, s, full && stated(in.State().Status()))
	}
	if incremental {
		for id := range c.dirty {
			if old := c.byID[id]; old != nil {
				delete(c.byID, id)
				changed = true
			}
			in := findAFT(a, id)
			var ne *aftCached
			if v4, ok := kedgetree.AsKedge_Aft_Ipv4Entries_Ipv4Entry(in); ok {
				ne = readV4(v4)
			} else if v6, ok := kedgetree.AsKedge_Aft_Ipv6Entries_Ipv6Entry(in); ok {
				ne = readV6(v6)
			}
			if ne != nil {
				c.byID[id] = ne
				fresh = append(fresh, ne)
			}
		}
		for id := range c.restate {
			e := c.byID[id]
			if _, read := c.dirty[id]; read || e == nil {
				continue
			}
			in := findAFT(a, id)
			if v4, ok := kedgetree.AsKedge_Aft_Ipv4Entries_Ipv4Entry(in); ok {
				e.stated = stated(v4.State().Status())
			} else if v6, ok := kedgetree.AsKedge_Aft_Ipv6Entries_Ipv6Entry(in); ok {
				e.stated = stated(v6.State().Status())
			} else {
				e.stated = false
			}
		}
	} else {
		seen := 0
		for in := range a.Ipv4Entries().Ipv4Entry().All() {
			cfg := in.Config()
			if !cfg.Exists() {
				continue
			}
			seen++
			if e := c.byID[in.Inst().Ident()]; e != nil && e.config == cfg.Inst() && e.stamp == cfg.Inst().Stamp() {
				e.gen = c.gen
				if full {
					e.stated = stated(in.State().Status())
				}
				continue
			}
			if ne := readV4(in); ne != nil {
				c.byID[ne.id] = ne
				fresh = append(fresh, ne)
				changed = true
			}
		}
		for in := range a.Ipv6Entries().Ipv6Entry().All() {
			cfg := in.Config()
			if !cfg.Exists() {
				continue
			}
			seen++
			if e := c.byID[in.Inst().Ident()]; e != nil && e.config == cfg.Inst() && e.stamp == cfg.Inst().Stamp() {
				e.gen = c.gen
				if full {
					e.stated = stated(in.State().Status())
				}
				continue
			}
			if ne := readV6(in); ne != nil {
				c.byID[ne.id] = ne
				fresh = append(fresh, ne)
				changed = true
			}
		}
		if len(c.byID) > seen {
			for id, e := range c.byID {
				if e.gen != c.gen {
					delete(c.byID, id)
				}
			}
			changed = true
		}
	}
	clear(c.dirty)
	clear(c.restate)
	if changed || len(fresh) > 0 {
		c.reorder(fresh)
	}
	for _, e := range c.order {
		fn(e)
	}
}

// findAFT returns the IP entry id names in the version a belongs to, or
// nil when it is not there (gone, or deleted and created again: a new
// identity).
func findAFT(a kedgetree.Kedge_Aft, id tree.Ident) *tree.Inst {
	var list *tree.Inst
	switch id.Schema().Path {
	case aftV4Path:
		list = a.Ipv4Entries().Inst()
	case aftV6Path:
		list = a.Ipv6Entries().Inst()
	}
	if list == nil {
		return nil
	}
	e := list.Entry(id.Schema(), id.Keys()...)
	if e == nil || e.Ident() != id {
		return nil
	}
	return e
}

// reorder drops the entries no longer in byID and merges the fresh ones,
// sorted, into the order in one pass.
func (c *aftCache) reorder(fresh []*aftCached) {
	slices.SortFunc(fresh, compareAFTCached)
	out := make([]*aftCached, 0, len(c.byID))
	j := 0
	for _, e := range c.order {
		if c.byID[e.id] != e {
			continue
		}
		for j < len(fresh) && compareAFTCached(fresh[j], e) < 0 {
			out = append(out, fresh[j])
			j++
		}
		out = append(out, e)
	}
	c.order = append(out, fresh[j:]...)
}

func compareAFTCached(a, b *aftCached) int {
	if c := compareKeys(a.key, b.key); c != 0 {
		return c
	}
	return strings.Compare(a.prefix, b.prefix)
}
