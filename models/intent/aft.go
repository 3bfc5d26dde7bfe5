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

// aftRoutes offers /kedge/aft's IP entries as routes; taken holds the
// (table, prefix) of every other route of the intent. With a cache it
// offers them in route order and says so.
func aftRoutes(a kedgetree.Kedge_Aft, full bool, set *RouteSet, taken map[route.Key]string,
	consider func(route.Route, Origin, subject), cache *aftCache, incremental bool) (sorted bool) {
	if !a.Exists() {
		return false
	}
	set.HasAFT = aftHolds(a)
	type sess struct{ class, tier string }
	sessions := map[string]sess{}
	for in := range a.Sessions().Session().All() {
		c := in.Config()
		id, _ := c.Id()
		class, _ := c.Class()
		tier, _ := c.Tier()
		s := sess{class: string(class), tier: string(tier)}
		if s.tier == "" {
			s.tier = accord.TierOperator
		}
		if s.class == "" {
			s.class = classUnderlay
		}
		sessions[id] = s
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
			set.AFT = append(set.AFT, st)
		}
	}
	groups := map[uint64]aftGroup{}
	for in := range a.NextHopGroups().NextHopGroup().All() {
		id, _ := in.Id()
		var g aftGroup
		type member struct{ idx, w uint64 }
		var members []member
		for m := range in.NextHops().NextHop().All() {
			mc := m.Config()
			idx, _ := mc.Index()
			w, _ := mc.Weight()
			members = append(members, member{idx, w})
		}
		// By index: the list holds them in no order, the kernel keeps them
		// in the order given.
		slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.idx, b.idx) })
		for _, m := range members {
			idx, w := m.idx, m.w
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
		groups[id] = g
		if full {
			st := AFTState{Key: AFTKey{Kind: AFTNextHopGroup, ID: id}, Status: string(kedgepath.AftStatusInstalled),
				Stated: stated(in.State().Status())}
			if g.reason != "" {
				st.Status, st.Reason = string(kedgepath.AftStatusFailed), g.reason
			}
			set.AFT = append(set.AFT, st)
		}
	}
	entry := func(kind AFTKind, prefix string, dst netip.Prefix, perr error, nhg uint64, session string, isStated bool) {
		o := Origin{AFT: AFTKey{Kind: kind, Prefix: prefix}, Stated: isStated}
		state := func(status kedgepath.AftStatus, reason string) {
			if full {
				set.AFT = append(set.AFT, AFTState{Key: o.AFT, Status: string(status), Reason: reason, Stated: isStated})
			}
		}
		if perr != nil {
			state(kedgepath.AftStatusFailed, perr.Error())
			return
		}
		if winner, ok := taken[route.Key{Table: aftTable, Dst: dst}]; ok {
			state(kedgepath.AftStatusOverridden, winner+" holds the same prefix and table and wins over gRIBI")
			return
		}
		g, ok := groups[nhg]
		switch {
		case !ok:
			state(kedgepath.AftStatusFailed, fmt.Sprintf("next-hop-group %d does not exist", nhg))
			return
		case g.reason != "":
			state(kedgepath.AftStatusFailed, fmt.Sprintf("next-hop-group %d: %s", nhg, g.reason))
			return
		}
		r := route.Route{Dst: dst, Table: aftTable}
		if len(g.hops) == 1 {
			r.Gateway, r.Device = g.hops[0].Gateway, g.hops[0].Device
		} else {
			r.Multipath = g.hops
		}
		s, ok := sessions[session]
		if !ok {
			s = sess{class: classUnderlay, tier: accord.TierOperator}
		}
		consider(r, o, subject{class: s.class, tier: s.tier, dst: dst})
	}
	// The states are few (next hops, groups, entries that are no route):
	// sorted, so equal trees give equal sets.
	defer func() {
		slices.SortFunc(set.AFT, func(x, y AFTState) int {
			return cmp.Or(cmp.Compare(x.Key.Kind, y.Key.Kind), cmp.Compare(x.Key.ID, y.Key.ID), cmp.Compare(x.Key.Prefix, y.Key.Prefix))
		})
	}()
	if cache != nil {
		cache.entries(a, incremental, full, func(e *aftCached) {
			entry(e.kind, e.prefix, e.dst, e.perr, e.nhg, e.session, e.stated)
		})
		return true
	}
	for in := range a.Ipv4Entries().Ipv4Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		sess, _ := c.Session()
		dst, err := netip.ParsePrefix(p)
		entry(AFTIPv4, p, dst.Masked(), err, nhg, sess, full && stated(in.State().Status()))
	}
	for in := range a.Ipv6Entries().Ipv6Entry().All() {
		c := in.Config()
		p, _ := c.Prefix()
		nhg, _ := c.NextHopGroup()
		sess, _ := c.Session()
		dst, err := netip.ParsePrefix(p)
		entry(AFTIPv6, p, dst.Masked(), err, nhg, sess, full && stated(in.State().Status()))
	}
	return false
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
