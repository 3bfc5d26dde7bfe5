// Package kernel is the route backend over rtnetlink (see package route
// for the contract): it makes the kernel's routes, policy rules and
// underlay interfaces (VLAN, or macvlan where the kernel lacks 8021q) in
// one network namespace match a route.Config.
//
// Restarts: New adopts Kedge's routes already in the kernel (no flush). Set
// compares against the kernel, so a route present both in the kernel and in
// the new Config causes no message at all; stale ones are deleted at the end
// of the first Set, after every add, so a restart makes no route flap. A
// daemon that cannot promise its first Config is complete sets
// Options.HoldStale and calls Sweep once it is.
//
// All kernel access goes through the internal rtnl package.
package kernel

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
)

// DefaultBatch is how many route messages go in one netlink sendmsg.
const DefaultBatch = 512

// Options configure a Backend.
type Options struct {
	// Protocol marks Kedge's routes and rules; 0 means DefaultProtocol.
	// Values the kernel reserves for itself (0-4) are rejected.
	Protocol uint8
	// NetNS is the network namespace: "" is the current one, a bare name is
	// /run/netns/NAME, a path is used as is.
	NetNS string
	// Logger receives adoption and change summaries; nil discards them.
	Logger *slog.Logger
	// Batch is the number of requests per netlink send; 0 means DefaultBatch.
	Batch int
	// HoldStale keeps the routes, rules and interfaces adopted by New, even
	// when a Config lacks them, until Sweep is called (FRR's graceful
	// restart). Without it the first Set removes them.
	HoldStale bool
	// LostGrace is how long a route the kernel removed with its link may
	// wait for the Patch that deletes it (a pod's DEL: the CNI plugin
	// deletes the veth first) before the backend asks for the whole Set
	// that records it as failed (Watch reports drift, Patch refuses); 0
	// means DefaultLostGrace.
	LostGrace time.Duration
	// Now is the clock of LostGrace; nil means time.Now.
	Now func() time.Time
}

// DefaultLostGrace is Options.LostGrace's default: a pod's DEL reaches
// the backend milliseconds after its veth goes, while a link that stays
// down should show in the routes' state within a few seconds.
const DefaultLostGrace = 2 * time.Second

// Backend programs one network namespace (a route.Backend). Its methods
// are safe for concurrent use; Set calls are serialised.
type Backend struct {
	mu     sync.Mutex
	conn   *rtnl.Conn
	proto  uint8
	batch  int
	log    *slog.Logger
	vlan   *bool // 8021q support, probed once on first need
	status route.Status
	// held is what New adopted, kept until Sweep when Options.HoldStale.
	held *heldState
	last *route.Config // the last Config given to Set, for Sweep
	// cache is Kedge's routes in the kernel as of the end of the last Set,
	// kept true by the netlink monitor; nil means read the kernel.
	cache *routeCache
	// noBase is why the route cache was last dropped (Patch's reason
	// for refusing).
	noBase string
	// lost is Kedge's routes the kernel removed since the last Set (with
	// their link, or deleted by someone else) and the cache forgot, by
	// key, with their device's name: a Patch refuses while one could be
	// put back and the Patch does not put or delete it (links.go).
	lost map[route.Key]lostRoute
	// lostGrace and now: Options.LostGrace and Options.Now.
	lostGrace time.Duration
	now       func() time.Time
	// lostWoke is when Watch last reported drift for a route lost past
	// its grace, so it asks again only once per grace.
	lostWoke time.Time
	// lostDown is the devices of lost routes that are down or away.
	lostDown map[string]bool
	// down is the links known to be administratively down (links.go).
	down map[int]bool
	// exchanged, when set, is called after each exchange of adds, before
	// settle looks for someone else's changes: tests make one there.
	exchanged func()
	// links is the namespace's links as last listed, nil after any link
	// event; index and names map device names and interface indexes
	// both ways, kept from the monitor's link events (links.go).
	links       []rtnl.Link
	index       map[string]int
	names       map[int]string
	linkEpoch   uint64 // counts the times a device name may have moved
	linksRead   uint64 // counts the times links was read
	dumped      bool   // the current Set read the kernel's routes
	incremental bool   // the current Set took the fast path
	// prev is the last Set's routes and outcome, the fast path's reference.
	prev lastSet
	// base says whether a Patch may apply (patch.go).
	base    base
	scratch scratch
}

// scratch is per-Set working memory reused across Sets.
type scratch struct {
	// spareNorm and spareStatus are the buffers of the Set before prev,
	// free for the next one.
	spareNorm   []route.Route
	spareStatus []route.RouteStatus
	spareRoutes []route.Route
	errs        []error
	keys        map[route.Key]int
	arena       []byte
	reqs        []rtnl.Request
	sent        []rtnl.Route
	idx         []int
}

// shedAbove is the size past which per-Set buffers are dropped rather
// than kept for the next Set: a bulk Set's (100,000 routes: about 650 B a
// route in requests, sent routes, the plan's spares and key map) would
// otherwise stay in the heap for good, while a small change needs small
// buffers and a big one allocates in proportion to its own work anyway.
const shedAbove = 4096

// shed drops the buffers that grew past shedAbove.
func (sc *scratch) shed() {
	if cap(sc.reqs) > shedAbove || cap(sc.arena) > shedAbove*rtnl.RouteMsgSize {
		sc.arena, sc.reqs, sc.sent, sc.idx = nil, nil, nil, nil
	}
	if cap(sc.spareNorm) > shedAbove || cap(sc.spareStatus) > shedAbove || cap(sc.spareRoutes) > shedAbove {
		sc.spareNorm, sc.spareStatus, sc.spareRoutes = nil, nil, nil
	}
	if len(sc.keys) > shedAbove || cap(sc.errs) > shedAbove {
		sc.keys, sc.errs = nil, nil
	}
}

type heldState struct {
	routes map[route.Key]bool
	rules  map[rtnl.Rule]bool
	links  map[string]bool
}

// New opens the namespace and adopts the Kedge routes already there without
// changing them.
func New(opts Options) (*Backend, error) {
	if opts.Protocol == 0 {
		opts.Protocol = route.DefaultProtocol
	}
	if opts.Protocol <= 4 {
		return nil, fmt.Errorf("check protocol %d: reserved for the kernel", opts.Protocol)
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.LostGrace <= 0 {
		opts.LostGrace = DefaultLostGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	conn, err := rtnl.Open(rtnl.NSPath(opts.NetNS))
	if err != nil {
		return nil, fmt.Errorf("open route backend: %w", err)
	}
	b := &Backend{conn: conn, proto: opts.Protocol, batch: opts.Batch,
		log: opts.Logger.With("backend", "route", "netns", opts.NetNS), lostGrace: opts.LostGrace, now: opts.Now}
	routes, err := b.kernelRoutes()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("adopt routes: %w", err)
	}
	rules, err := conn.Rules(b.proto)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("adopt rules: %w", err)
	}
	b.status.Adopted = routes.len()
	b.log.Info("adopted kernel state", "routes", routes.len(), "rules", len(rules), "protocol", b.proto,
		"hold_stale", opts.HoldStale)
	if opts.HoldStale {
		links, err := conn.Links()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("adopt interfaces: %w", err)
		}
		b.held = &heldState{routes: map[route.Key]bool{}, rules: map[rtnl.Rule]bool{}, links: map[string]bool{}}
		for k := range routes.all() {
			b.held.routes[k] = true
		}
		for _, r := range rules {
			b.held.rules[r] = true
		}
		for _, l := range links {
			if l.Alias == route.InterfaceAlias {
				b.held.links[l.Name] = true
			}
		}
	}
	return b, nil
}

// Sweep ends the hold of Options.HoldStale: it applies the last Config again,
// now removing whatever adopted state that Config lacks. Without HoldStale,
// or when called twice, it is the same as repeating the last Set. Before any
// Set it fails with ErrNoConfig rather than sweep everything away, and
// after a Patch with ErrNoBase (the last Config is no longer what is
// desired).
func (b *Backend) Sweep(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		return fmt.Errorf("sweep: %w", route.ErrNoConfig)
	}
	if b.base.patched {
		// The last Config is no longer the desired state, and nothing
		// is held (a Patch needs that): the caller Sets the whole Config.
		return fmt.Errorf("sweep: %w", route.ErrNoBase)
	}
	b.held = nil
	return b.set(ctx, *b.last)
}

// Close releases the netlink socket. Routes stay in the kernel.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn.Close()
}

// Status returns the result of the last Set.
func (b *Backend) Status() route.Status {
	var s route.Status
	b.CopyStatus(&s)
	return s
}

// CopyStatus is Status into dst, reusing dst's slices: a reconciler
// reading the outcome of every one-route Set into a 100,000-route Config
// need not allocate the whole status each time.
func (b *Backend) CopyStatus(dst *route.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	routes, rules, ifs := dst.Routes, dst.Rules, dst.Interfaces
	*dst = b.status
	dst.Routes = append(routes[:0], b.status.Routes...)
	dst.Rules = append(rules[:0], b.status.Rules...)
	dst.Interfaces = append(ifs[:0], b.status.Interfaces...)
}

// VLANSupported reports (probing the kernel once) whether 802.1Q links can be made.
func (b *Backend) VLANSupported() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.vlanSupported()
}

func (b *Backend) vlanSupported() (bool, error) {
	if b.vlan != nil {
		return *b.vlan, nil
	}
	ok, err := b.conn.VLANSupported()
	if err != nil {
		return false, err
	}
	b.vlan = &ok
	if !ok {
		b.log.Info("kernel lacks 8021q; underlay interfaces of kind auto become macvlan")
	}
	return ok, nil
}
