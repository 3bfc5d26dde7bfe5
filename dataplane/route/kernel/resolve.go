package kernel

import (
	"net/netip"

	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"golang.org/x/sys/unix"
)

// A route given only a gateway (every gRIBI route, a gNMI route with a
// next hop alone) gets the device the kernel resolves when it installs
// it, and the kernel drops it when that device goes down or away (IPv4
// ones silently). The route cache counts such a route under that device,
// as it counts a route over a named one, so the link's going records it
// lost (links.go) instead of leaving it "installed".
//
// The device comes from the kernel's echo of the add (NLM_F_ECHO): the
// kernel's own answer for that route, in its table, when it fixed the
// device (a later address change does not move an installed route; a
// route added after it resolves anew). Asking where a gateway resolves
// (RTM_GETROUTE) instead would look it up through the policy rules, not
// in the route's table, and stay true only until an address or a route
// changed. Echoing every add cost a 100,000-entry gRIBI load about a
// tenth more CPU (a second message per route to read and parse), so one
// add per gateway and table is echoed in a run of such adds and the
// others take its device: a route given only a gateway has universe
// scope, so it resolves no other route's gateway (the kernel resolves a
// gateway through link-scope routes), and the adds of one exchange
// resolve a gateway alike until an add that could change that (a device
// route, a multipath or link-scope one) ends the run. Someone else
// changing addresses or routes during the exchange could make the rest
// of a run resolve elsewhere, so when the monitor holds any change of
// someone else's once the exchange is acked (the backend drained it
// before planning, and the kernel queues a notification as it makes the
// change), the adds sent without an echo keep no device (settle): they
// count as unknown, as before echoes, and only the echoed ones keep
// theirs, the kernel's own answer for them. A change made between an
// echoed add and the adds after it is then always seen; the cost is one
// poll an exchange, and a change that touched no gateway (a new pod's
// veth) costs the adds their devices for no reason.
//
// A multipath route whose next hops name no device (a gRIBI group of
// several next hops) is echoed too, every such add: the echo's
// RTA_MULTIPATH carries each next hop's device, so the cache counts the
// route under each of them and a link's going finds it (cache.go says
// what the kernel does to it). A multipath add ends a run anyway, so it
// has no run to share an echo with.

// gwKey is a gateway in a table, the unit a run's echo covers.
type gwKey struct {
	gw    netip.Addr
	table uint32
}

// gatewayOnly reports whether the kernel picks r's device.
func gatewayOnly(r rtnl.Route) bool {
	return r.OIF == 0 && r.Gateway.IsValid() && len(r.Nexthops) == 0
}

// keepsRun reports whether adding r leaves every gateway resolving as
// before: a single path through a gateway with universe scope.
func keepsRun(r rtnl.Route) bool {
	return r.Gateway.IsValid() && len(r.Nexthops) == 0 && r.Scope == unix.RT_SCOPE_UNIVERSE
}

// echoFlag returns the flag the add of want is sent with besides create
// or replace: FlagEcho for the first gateway-only add of its gateway and
// table in the run. An add that may change how gateways resolve ends the
// run. Called for every add in the order sent.
func (p *routePlan) echoFlag(want rtnl.Route) uint16 {
	var f uint16
	// A bulk load's adds share one gateway or a few: the last one's key
	// is checked before the map (BenchmarkEchoRuns: 77 ns an add
	// without, most of it hashing the address; 39 with).
	if k := (gwKey{want.Gateway, want.Table}); gatewayOnly(want) && (!p.inRun || k != p.last) {
		if !p.run[k] {
			if p.run == nil {
				p.run = map[gwKey]bool{}
			}
			p.run[k] = true
			f = rtnl.FlagEcho
		}
		p.last, p.inRun = k, true
	}
	if f == 0 && gatewayOnly(want) {
		p.shared++
	}
	if !keepsRun(want) {
		clear(p.run)
		p.inRun = false
	}
	if unknownHop(want) {
		f = rtnl.FlagEcho
	}
	return f
}

// unknownHop reports whether r is multipath with a next hop whose device
// the kernel picks.
func unknownHop(r rtnl.Route) bool {
	for _, h := range r.Nexthops {
		if h.OIF == 0 && h.Gateway.IsValid() {
			return true
		}
	}
	return false
}

// learn takes the device of the route the add j installed from the
// kernel's echo of it: a multipath route's next hops each take the
// device of the echoed next hop with their gateway and weight (the
// plan's next-hop slices are its own).
func (p *routePlan) learn(j int, r rtnl.Route) {
	if j >= len(p.sent) {
		return
	}
	s := &p.sent[j]
	if gatewayOnly(*s) && !r.Multipath && r.OIF != 0 {
		s.OIF = r.OIF
		return
	}
	if !r.Multipath || len(r.Nexthops) != len(s.Nexthops) {
		return
	}
	for i := range s.Nexthops {
		h := &s.Nexthops[i]
		if h.OIF != 0 {
			continue
		}
		// The kernel keeps the order it was given; search if not.
		if e := r.Nexthops[i]; e.Gateway == h.Gateway && e.Hops == h.Hops {
			h.OIF = e.OIF
			continue
		}
		for _, e := range r.Nexthops {
			if e.Gateway == h.Gateway && e.Hops == h.Hops {
				h.OIF = e.OIF
				break
			}
		}
	}
}

// settle gives the adds sent without an echo their run's device (spread)
// unless someone else changed the namespace since the events were last
// drained, before the plan: then, or when it cannot tell, they keep
// none (see above).
func (b *Backend) settle(p *routePlan) {
	if p.shared == 0 {
		return // every gateway-only add was echoed: the kernel's own answers
	}
	if b.exchanged != nil {
		b.exchanged()
	}
	if changed, err := b.conn.WaitChanges(0); changed || err != nil {
		b.log.Debug("gateway devices not spread: the namespace changed during the exchange", "adds", len(p.sent))
		return
	}
	p.spread()
}

// spread gives each gateway-only add sent without an echo the device its
// run's echoed add learnt, walking the adds as echoFlag planned them; 0
// (unknown, as before) when that echo never came (the add failed).
func (p *routePlan) spread() {
	var run map[gwKey]int
	// last is the key of the last gateway-only add in the run and oif
	// its device, checked before the map as in echoFlag.
	var last gwKey
	oif, have := 0, false
	for j := range p.sent {
		r := &p.sent[j]
		switch {
		case p.reqs[j].Flags&rtnl.FlagEcho != 0:
			if run == nil {
				run = map[gwKey]int{}
			}
			last, oif, have = gwKey{r.Gateway, r.Table}, r.OIF, true
			run[last] = oif
		case gatewayOnly(*r):
			if k := (gwKey{r.Gateway, r.Table}); !have || k != last {
				last, oif, have = k, run[k], true
			}
			r.OIF = oif
		}
		if !keepsRun(*r) {
			clear(run)
			have = false
		}
	}
}
