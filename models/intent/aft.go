package intent

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// This file is gRIBI's contribution to the routes intent, behind one
// seam: aftRoutes offers the injected IP entries of /kedge/aft as routes
// (protocol 107 like every other route, main table, judged by the route
// policy by the class and tier their session recorded), and AFTStates
// carries the status of what is not a route of its own (next hops and
// groups) or does not become one (overridden, unresolvable).
//
// Precedence: a /kedge/routes entry, a pod's host route or a mesh peer's
// overlay route with the same prefix in the same table wins over a gRIBI
// entry, whatever the posture level does to it; the gRIBI entry is then
// "overridden", its reason naming the winner. Operators' configuration is
// explicit and tiered, a controller's injection is not, and a withheld
// configured route must not be replaced by an injected one the posture
// level would judge differently.

// AFTKind says which /kedge/aft list an AFTKey names.
type AFTKind uint8

// The /kedge/aft lists.
const (
	AFTIPv4 AFTKind = iota + 1
	AFTIPv6
	AFTNextHopGroup
	AFTNextHop
)

// AFTKey names a /kedge/aft entry: Prefix for IP entries (as the tree
// holds it), ID for groups and next hops.
type AFTKey struct {
	Kind   AFTKind
	Prefix string
	ID     uint64
}

// AFTState is the status of a /kedge/aft entry the backend's outcome does
// not give: next hops and groups, and IP entries that are overridden or
// cannot become a route.
type AFTState struct {
	Key    AFTKey
	Status string // an aft-status
	Reason string
	Stated bool
}

// aftTable is the kernel table gRIBI's default network instance maps to.
const aftTable = 254

// MaxWeight is the largest next-hop weight the kernel holds (rtnh_hops
// is one byte, weight - 1).
const MaxWeight = 256

type aftNextHop struct {
	gw     netip.Addr
	dev    string
	reason string // why it cannot be programmed ("" when it can)
}

type aftGroup struct {
	hops   []route.NextHop
	reason string
}

// aftSession is what a gRIBI session's record says of its entries.
type aftSession struct{ class, tier string }

// aftMeta is what the IP entries of /kedge/aft resolve through: the
// sessions, next hops and groups. They are few, and read whole; states
// are the next hops' and groups' statuses (when read with full).
type aftMeta struct {
	sessions map[string]aftSession
	groups   map[uint64]aftGroup
	states   []AFTState
}

// readAFTMeta reads a's sessions, next hops and groups.
func readAFTMeta(a kedgetree.Kedge_Aft, full bool) aftMeta {
	m := aftMeta{sessions: map[string]aftSession{}, groups: map[uint64]aftGroup{}}
	for in := range a.Sessions().Session().All() {
		c := in.Config()
		id, _ := c.Id()
		class, _ := c.Class()
		tier, _ := c.Tier()
		s := aftSession{class: string(class), tier: string(tier)}
		if s.tier == "" {
			s.tier = accord.TierOperator
		}
		if s.class == "" {
			s.class = classUnderlay
		}
		m.sessions[id] = s
	}
	nhs := map[uint64]aftNextHop{}
	for in := range a.NextHops().NextHop().All() {
		c := in.Config()
		idx, _ := c.Index()
		var nh aftNextHop
		if ip, ok := c.IpAddress(); ok {
			nh.gw, _ = netip.ParseAddr(ip)
		}
		nh.dev, _ = c.Interface()
		if u, _ := c.Unsupported(); u != "" {
			nh.reason = "unsupported next hop: " + u
		}
		nhs[idx] = nh
		if full {
			st := AFTState{Key: AFTKey{Kind: AFTNextHop, ID: idx}, Status: string(kedgepath.AftStatusInstalled),
				Stated: stated(in.State().Status())}
			if nh.reason != "" {
				st.Status, st.Reason = string(kedgepath.AftStatusFailed), nh.reason
			}
			m.states = append(m.states, st)
		}
	}
	for in := range a.NextHopGroups().NextHopGroup().All() {
		id, _ := in.Id()
		var g aftGroup
		type member struct{ idx, w uint64 }
		var members []member
		for mi := range in.NextHops().NextHop().All() {
			mc := mi.Config()
			idx, _ := mc.Index()
			w, _ := mc.Weight()
			members = append(members, member{idx, w})
		}
		// By index: the list holds them in no order, the kernel keeps them
		// in the order given.
		slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.idx, b.idx) })
		for _, mb := range members {
			idx, w := mb.idx, mb.w
			nh, ok := nhs[idx]
			switch {
			case !ok:
				g.reason = fmt.Sprintf("next hop %d does not exist", idx)
			case nh.reason != "":
				g.reason = fmt.Sprintf("next hop %d: %s", idx, nh.reason)
			case w > MaxWeight:
				g.reason = fmt.Sprintf("next hop %d: weight %d above the kernel's %d", idx, w, MaxWeight)
			}
			if g.reason != "" {
				break
			}
			g.hops = append(g.hops, route.NextHop{Gateway: nh.gw, Device: nh.dev, Weight: uint16(max(w, 1))})
		}
		if len(g.hops) == 0 && g.reason == "" {
			g.reason = "no next hops"
		}
		m.groups[id] = g
		if full {
			st := AFTState{Key: AFTKey{Kind: AFTNextHopGroup, ID: id}, Status: string(kedgepath.AftStatusInstalled),
				Stated: stated(in.State().Status())}
			if g.reason != "" {
				st.Status, st.Reason = string(kedgepath.AftStatusFailed), g.reason
			}
			m.states = append(m.states, st)
		}
	}
	return m
}

// aftResolved is what an IP entry becomes: a route judged by its
// session's class and tier, or (status set) an entry that cannot be one.
type aftResolved struct {
	route          route.Route
	subj           subject
	status, reason string
}

// resolve makes an IP entry (dst parsed from its prefix with perr) a
// route through group nhg. Precedence is the caller's.
func (m *aftMeta) resolve(dst netip.Prefix, perr error, nhg uint64, session string) aftResolved {
	if perr != nil {
		return aftResolved{status: string(kedgepath.AftStatusFailed), reason: perr.Error()}
	}
	g, ok := m.groups[nhg]
	switch {
	case !ok:
		return aftResolved{status: string(kedgepath.AftStatusFailed), reason: fmt.Sprintf("next-hop-group %d does not exist", nhg)}
	case g.reason != "":
		return aftResolved{status: string(kedgepath.AftStatusFailed), reason: fmt.Sprintf("next-hop-group %d: %s", nhg, g.reason)}
	}
	r := route.Route{Dst: dst, Table: aftTable}
	if len(g.hops) == 1 {
		r.Gateway, r.Device = g.hops[0].Gateway, g.hops[0].Device
	} else {
		r.Multipath = g.hops
	}
	s, ok := m.sessions[session]
	if !ok {
		s = aftSession{class: classUnderlay, tier: accord.TierOperator}
	}
	return aftResolved{route: r, subj: subject{class: s.class, tier: s.tier, dst: dst}}
}

// aftRoutes offers /kedge/aft's IP entries as routes; taken holds the
// (table, prefix) of every other route of the intent. With a cache it
// offers them in route order and says so, and keeps the sessions, next
// hops and groups it read for the cache's change sets.
func aftRoutes(a kedgetree.Kedge_Aft, full bool, set *RouteSet, taken map[route.Key]string,
	consider func(route.Route, Origin, subject), cache *aftCache, incremental bool) (sorted bool) {
	if !a.Exists() {
		if cache != nil {
			cache.reset()
		}
		return false
	}
	set.HasAFT = aftHolds(a)
	meta := readAFTMeta(a, full)
	set.AFT = append(set.AFT, meta.states...)
	entry := func(e *aftCached, kind AFTKind, prefix string, dst netip.Prefix, perr error, nhg uint64, session string, isStated bool) {
		o := Origin{AFT: AFTKey{Kind: kind, Prefix: prefix}, Stated: isStated}
		state := func(status, reason string) {
			if full {
				set.AFT = append(set.AFT, AFTState{Key: o.AFT, Status: status, Reason: reason, Stated: isStated})
			}
		}
		if perr == nil {
			if winner, ok := taken[route.Key{Table: aftTable, Dst: dst}]; ok {
				state(string(kedgepath.AftStatusOverridden), winner+" holds the same prefix and table and wins over gRIBI")
				return
			}
		}
		res := meta.resolve(dst, perr, nhg, session)
		if res.status != "" {
			state(res.status, res.reason)
			return
		}
		n := len(set.Config.Routes)
		consider(res.route, o, res.subj)
		if e != nil {
			e.inSet = len(set.Config.Routes) > n
		}
	}
	// The states are few (next hops, groups, entries that are no route):
	// sorted, so equal trees give equal sets.
	defer func() { sortAFTStates(set.AFT) }()
	if cache != nil {
		cache.meta = meta
		cache.entries(a, incremental, full, func(e *aftCached) {
			e.inSet = false
			entry(e, e.kind, e.prefix, e.dst, e.perr, e.nhg, e.session, e.stated)
		})
		return true
	}
	for in := range a.Ipv4Entries().Ipv4Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		sess, _ := c.Session()
		dst, err := netip.ParsePrefix(p)
		entry(nil, AFTIPv4, p, dst.Masked(), err, nhg, sess, full && stated(in.State().Status()))
	}
	for in := range a.Ipv6Entries().Ipv6Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		sess, _ := c.Session()
		dst, err := netip.ParsePrefix(p)
		entry(nil, AFTIPv6, p, dst.Masked(), err, nhg, sess, full && stated(in.State().Status()))
	}
	return false
}

func sortAFTStates(s []AFTState) {
	slices.SortFunc(s, func(x, y AFTState) int {
		return cmp.Or(cmp.Compare(x.Key.Kind, y.Key.Kind), cmp.Compare(x.Key.ID, y.Key.ID), cmp.Compare(x.Key.Prefix, y.Key.Prefix))
	})
}

// aftHolds reports whether /kedge/aft holds any entry (next hop, group,
// or IP entry): then the applier reports programming progress for the
// gRIBI service's FIB acknowledgements, which a group alone waits for
// too.
func aftHolds(a kedgetree.Kedge_Aft) bool {
	return a.Exists() && (a.NextHops().NextHop().Len() > 0 || a.NextHopGroups().NextHopGroup().Len() > 0 ||
		a.Ipv4Entries().Ipv4Entry().Len() > 0 || a.Ipv6Entries().Ipv6Entry().Len() > 0)
}

// hasAFTRoutes reports whether /kedge/aft holds IP entries (so the
// routes intent must note every other route's key for precedence).
func hasAFTRoutes(a kedgetree.Kedge_Aft) bool {
	return a.Exists() && (a.Ipv4Entries().Ipv4Entry().Len() > 0 || a.Ipv6Entries().Ipv6Entry().Len() > 0)
}

// originName names a non-gRIBI route's tree entry, for an overridden
// gRIBI entry's reason.
func originName(o Origin) string {
	switch {
	case o.IsPod():
		return "pod " + o.Pod.ContainerID + "/" + o.Pod.IfName
	case o.IsOverlay():
		return "mesh peer " + o.Peer
	}
	return tree.RenderPath(kedgepath.Root().Kedge().Routes().Route(o.Prefix, o.Table).Elems())
}
