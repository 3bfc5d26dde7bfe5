package kernel

import (
	"fmt"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
	"golang.org/x/sys/unix"
)

// The backend keeps two views of the namespace's links. The list (links)
// has everything a whole Set needs to manage underlay interfaces (kinds,
// parents, aliases) and is read again after any link event. The index
// (index, names) maps device names to interface indexes for planning
// routes; it is read once and then kept from the monitor's link events,
// which carry the link's name, so a node making a veth per pod does not
// list 2,000 links again before each pod's route is patched in.

// dropLinks forgets the link list and the index; linkEpoch tells the fast
// path that device names may now resolve differently.
func (b *Backend) dropLinks() {
	b.links, b.index, b.names = nil, nil, nil
	b.linkEpoch++
}

// linkEvent applies a link notification. The list is out of date
// whatever it says. A link going down or away changes the route cache
// only when Kedge has routes over it (a new pod's veth, one another pod
// owns or one Kedge never used changes none of its routes), and then
// only by the routes over it (forgetLink), those given a gateway alone
// among them: the cache knows the device the kernel resolved for them
// (resolve.go). The index follows the link's name; a name that moves to
// another index or goes away also moves the link epoch (routes the fast
// path planned with it resolve differently), a new name does not.
func (b *Backend) linkEvent(ev rtnl.Event) {
	b.links = nil
	b.followDown(ev)
	if ev.Removal && b.cache != nil && b.cache.onLinkCount(ev.Link) > 0 {
		b.forgetLink(ev)
	}
	b.lostLinkEvent(ev)
	if b.index == nil {
		return
	}
	if ev.Type == unix.RTM_NEWLINK && ev.Name == "" {
		b.dropLinks() // cannot follow it: list them again
		return
	}
	old, had := b.names[ev.Link]
	switch {
	case ev.Type == unix.RTM_DELLINK:
		if had {
			delete(b.names, ev.Link)
			if b.index[old] == ev.Link {
				delete(b.index, old)
			}
			b.linkEpoch++
		}
	case had && old == ev.Name:
		// Up, down, carrier, addresses: same name, same index.
	default:
		if had && b.index[old] == ev.Link {
			delete(b.index, old)
		}
		if i, taken := b.index[ev.Name]; had || (taken && i != ev.Link) {
			b.linkEpoch++
		}
		b.names[ev.Link], b.index[ev.Name] = ev.Name, ev.Link
	}
}

// followDown keeps the set of links known to be administratively down
// from a link event: a multipath route goes with the last of its next
// hops' links to go down (routeCache.forgetLink).
func (b *Backend) followDown(ev rtnl.Event) {
	switch {
	case ev.Type == unix.RTM_DELLINK || ev.Up:
		delete(b.down, ev.Link)
	case ev.Removal:
		if b.down == nil {
			b.down = map[int]bool{}
		}
		b.down[ev.Link] = true
	}
}

// isDown reports whether link index is known to be down. Until the first
// list of links (linkList) only the events since the backend opened are
// known; a route's next hop cannot be installed over a link that is down.
func (b *Backend) isDown(index int) bool { return b.down[index] }

// linkList returns the namespace's links, listing them again when an
// event made the last list out of date. The caller must not modify the
// slice.
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
	b.linksRead++
	clear(b.down)
	for _, l := range links {
		if !l.Up {
			if b.down == nil {
				b.down = map[int]bool{}
			}
			b.down[l.Index] = true
		}
	}
	return links, nil
}

// linkIndex returns the device name → interface index map routes are
// planned with, from the events since it was built or, the first time
// and after a lost notification, from a fresh list. The caller must not
// modify it.
func (b *Backend) linkIndex() (map[string]int, error) {
	b.drainEvents()
	if b.index != nil {
		return b.index, nil
	}
	links, err := b.linkList()
	if err != nil {
		return nil, err
	}
	b.setIndex(links)
	return b.index, nil
}

// setIndex makes the index the one of links.
func (b *Backend) setIndex(links []rtnl.Link) {
	b.index, b.names = make(map[string]int, len(links)), make(map[int]string, len(links))
	for _, l := range links {
		b.index[l.Name], b.names[l.Index] = l.Index, l.Name
	}
}

// dropCache forgets the route cache (the next Set reads the kernel's
// routes) and records why, for the reason a Patch gives when it refuses.
func (b *Backend) dropCache(why string) {
	if b.cache != nil {
		b.noBase = why
	}
	b.cache = nil
}

// forgetLink forgets the cached routes over the link of ev, which the
// kernel removed with it, and records them as lost under the link's
// name. The rest of the cache stays true, so a pod's DEL (its veth goes
// first, then the Patch deleting its route) is patched, not a whole Set
// reading every route of the kernel. A multipath route over the link
// follows what the kernel does to it, which depends on whether its other
// next hops' links are down (routeCache.forgetLink); one the cache
// cannot follow drops the cache as before.
func (b *Backend) forgetLink(ev rtnl.Event) {
	n := b.cache.onLinkCount(ev.Link)
	name, ok := b.names[ev.Link]
	if !ok {
		name = ev.Name
	}
	away := ev.Type == unix.RTM_DELLINK
	if !b.cache.forgetLink(ev.Link, away, b.isDown, func(k route.Key) { b.lose(k, name) }) {
		b.dropCache(fmt.Sprintf("link %d, carrying %d of Kedge's routes (one the cache cannot follow among them), went down or away", ev.Link, n))
		return
	}
	b.log.Debug("routes lost with their link", "link", ev.Link, "name", name, "routes", n)
}

// lose records that the kernel no longer has Kedge's route k, over
// device dev ("" for none or unknown). The fast path cannot start from
// the last Set any more: it would take the route as installed.
func (b *Backend) lose(k route.Key, dev string) {
	if b.lost == nil {
		b.lost = map[route.Key]lostRoute{}
	}
	b.lost[k] = lostRoute{dev: dev, at: b.now()}
	b.prev.ok = false
}

// lostLinkEvent follows whether the devices of lost routes are up: a
// route over a link that is down or gone cannot be put back (the kernel
// refuses an IPv4 route over a down link) until the link is up again,
// under its name, so until then it neither wakes the watch nor holds
// Patches up. A pod's veth going down then away, in two events the watch
// may read apart, is such a link.
func (b *Backend) lostLinkEvent(ev rtnl.Event) {
	if len(b.lost) == 0 {
		clear(b.lostDown)
		return
	}
	name, ok := b.names[ev.Link]
	if !ok {
		name = ev.Name
	}
	switch {
	case ev.Removal && name != "":
		if b.lostDown == nil {
			b.lostDown = map[string]bool{}
		}
		b.lostDown[name] = true
	case ev.Up && ev.Name == "":
		clear(b.lostDown) // cannot tell which: take them all as up
	case ev.Up:
		delete(b.lostDown, ev.Name)
	}
}

// lostRepairable returns a lost route that could be put back now: its
// device, if it names one, is in index (with no index, any) and up. The
// last Set or Patch's routes are then not what the kernel holds and could
// hold, which a Patch not touching the route cannot fix. Routes whose
// device is down or away cannot be put back until it is up again, and the
// Patch deleting them (a pod's DEL) has nothing to do.
func (b *Backend) lostRepairable(index map[string]int) (route.Key, bool) {
	for k, l := range b.lost {
		if b.canPutBack(l.dev, index) {
			return k, true
		}
	}
	return route.Key{}, false
}

// lostRoute is a route of Kedge's the kernel removed: its device's name
// ("" for none or unknown) and when the backend learnt of it.
type lostRoute struct {
	dev string
	at  time.Time
}

// overdue reports whether l has waited longer than the grace for a Patch
// deleting it: its link is down or gone for good as far as the backend
// can tell, and the routes' state should say the route is not installed,
// which only the whole Set records.
func (b *Backend) overdue(l lostRoute, now time.Time) bool {
	return now.Sub(l.at) >= b.lostGrace
}

// lostOverdue reports whether a lost route is overdue and Watch has not
// asked for the whole Set within the last grace; it then notes that it
// asks now.
func (b *Backend) lostOverdue() bool {
	if len(b.lost) == 0 {
		return false
	}
	now := b.now()
	if !b.lostWoke.IsZero() && now.Sub(b.lostWoke) < b.lostGrace {
		return false
	}
	for _, l := range b.lost {
		if b.overdue(l, now) {
			b.lostWoke = now
			return true
		}
	}
	return false
}

// canPutBack reports whether a lost route over device dev could be put
// back now (see lostRepairable).
func (b *Backend) canPutBack(dev string, index map[string]int) bool {
	if dev == "" {
		return true
	}
	_, ok := index[dev]
	return (index == nil || ok) && !b.lostDown[dev]
}
