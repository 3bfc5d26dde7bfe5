// Package wgdevice is the WireGuard mesh backend over wgctrl and netlink
// (see package wgmesh for the contract). Set talks to WireGuard only
// through wgctrl and to the link only through netlink, both via
// internal/wgsys. Peer changes are applied as diffs against what the
// device reports, never as a full replace, so live peers keep their
// sessions; allowed IPs that a peer loses are first handed to a throwaway
// peer and only then dropped, so no prefix is ever unrouted while it still
// belongs to someone. Because the diff is against the device, a restarted
// daemon adopts a live device without touching it.
package wgdevice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/wgsys"
)

// WireGuard is the part of *wgctrl.Client the backend uses. Tests wrap it to
// count calls; production passes nil and gets a client opened in Netns.
type WireGuard interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
}

// linkSyncer is the link half of the chokepoint (*wgsys.Links).
type linkSyncer interface {
	Sync(name string, mtu int, addrs []netip.Prefix) (bool, error)
	Close()
}

var errBackendClosed = errors.New("wgmesh backend closed")

// Options configure a Backend. The zero value works in the caller's namespace.
type Options struct {
	// Netns is the path of the network namespace holding the device
	// (e.g. /var/run/netns/node1); empty means the daemon's own.
	Netns string
	// Logger receives one line per applied change; nil discards.
	Logger *slog.Logger
	// WireGuard overrides the wgctrl client (tests).
	WireGuard WireGuard
	// Resolve looks up an endpoint host; nil uses net.DefaultResolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Now is the clock for status; nil is time.Now.
	Now func() time.Time
	// StaleAfter is the handshake age after which an up peer is stale;
	// zero means 3 minutes (WireGuard rejects sessions older than that).
	StaleAfter time.Duration
	// InitiatorDelay is how long the node with the larger public key holds
	// back its keepalive, and so its own first handshake, with a new peer
	// (see initiator.go); zero means 1 s, negative disables the deferral.
	InitiatorDelay time.Duration
	// RetryAfter is the first interval at which the initiating node checks
	// a new peer for a handshake and re-creates it if it heard nothing back;
	// the interval doubles up to 4x, for RetryFor. Zero means 25 ms.
	RetryAfter time.Duration
	// RetryFor bounds the fast retries; after it WireGuard's own 5 s
	// retries carry on. Zero means 2 s.
	RetryFor time.Duration
	// FailAfter is how long a peer may stay without a first handshake
	// before it is failed rather than pending; zero means 30 seconds.
	FailAfter time.Duration
}

// Backend applies Configs to one WireGuard device. Set and the status
// methods may be called from different goroutines; Sets are serialised.
type Backend struct {
	opts   Options
	log    *slog.Logger
	thread *nsthread.Thread
	wg     WireGuard
	links  linkSyncer
	closer func() error

	mu       sync.Mutex
	iface    string
	names    map[wgtypes.Key]string
	wants    map[wgtypes.Key]wantPeer // last applied desired peers
	addrs    map[netip.Prefix]string  // allowed IP → peer name, last applied
	lastEP   map[wgtypes.Key]netip.AddrPort
	since    map[wgtypes.Key]time.Time     // when the peer was first configured
	peerErrs map[string]error              // name → error from the last Set
	pending  map[wgtypes.Key]time.Duration // deferred keepalives not yet set
	due      map[wgtypes.Key]time.Time     // when each pending keepalive is set
	watch    map[wgtypes.Key]time.Time     // initiated new peers → when
	retryIn  time.Duration                 // next fast-retry interval
	timer    *time.Timer
	wtimer   *time.Timer
	closed   bool
}

// New opens the backend's OS handles inside opts.Netns. The device does not
// need to exist yet; Set looks it up by name.
func New(opts Options) (*Backend, error) {
	b := &Backend{
		opts:     opts,
		log:      opts.Logger,
		names:    map[wgtypes.Key]string{},
		addrs:    map[netip.Prefix]string{},
		lastEP:   map[wgtypes.Key]netip.AddrPort{},
		since:    map[wgtypes.Key]time.Time{},
		peerErrs: map[string]error{},
		pending:  map[wgtypes.Key]time.Duration{},
		due:      map[wgtypes.Key]time.Time{},
		watch:    map[wgtypes.Key]time.Time{},
	}
	if b.opts.RetryAfter == 0 {
		b.opts.RetryAfter = 25 * time.Millisecond
	}
	if b.opts.RetryFor == 0 {
		b.opts.RetryFor = 2 * time.Second
	}
	if b.opts.InitiatorDelay == 0 {
		b.opts.InitiatorDelay = time.Second
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.opts.Now == nil {
		b.opts.Now = time.Now
	}
	if b.opts.StaleAfter == 0 {
		b.opts.StaleAfter = 3 * time.Minute
	}
	if b.opts.FailAfter == 0 {
		b.opts.FailAfter = 30 * time.Second
	}
	if b.opts.Resolve == nil {
		b.opts.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	t, err := nsthread.Start(opts.Netns)
	if err != nil {
		return nil, fmt.Errorf("start wgmesh backend: %w", err)
	}
	b.thread = t
	links, err := wgsys.OpenLinks(t)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("start wgmesh backend: %w", err)
	}
	b.links = links
	b.wg = opts.WireGuard
	b.closer = func() error { return nil }
	if b.wg == nil {
		c, err := wgsys.OpenWireGuard(t)
		if err != nil {
			links.Close()
			t.Close()
			return nil, fmt.Errorf("start wgmesh backend: %w", err)
		}
		b.wg, b.closer = c, c.Close
	}
	return b, nil
}

// Close releases the backend's handles; the device and its peers stay.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, t := range []*time.Timer{b.timer, b.wtimer} {
		if t != nil {
			t.Stop()
		}
	}
	b.mu.Unlock()
	b.links.Close()
	b.thread.Close()
	return b.closer()
}

// Set makes the device match cfg. A second Set with the same cfg makes no
// wgctrl ConfigureDevice call. Invalid peers (malformed or duplicate key,
// unresolvable endpoint, conflicting allowed IP) are reported as *PeerError
// and left as the device has them; everything else is applied. All failures
// come back joined.
func (b *Backend) Set(ctx context.Context, cfg wgmesh.Config) error {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return err
	}
	// Resolve outside the lock: DNS may be slow and status readers wait on it.
	want, keep, errs := b.resolve(ctx, cfg)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.Join(append(errs, errBackendClosed)...)
	}
	dev, err := b.wg.Device(cfg.Interface)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read device %s: %w", cfg.Interface, err))...)
	}
	p := makePlan(dev, cfg, want, keep, b.lastEP, b.pending, func() wgtypes.Key {
		k, _ := wgtypes.GeneratePrivateKey() // never fails on Linux: getrandom
		return k.PublicKey()
	})
	failed := map[string]bool{}
	if !p.empty() {
		for _, e := range b.apply(cfg.Interface, p) {
			errs = append(errs, e)
			var pe *wgmesh.PeerError
			if errors.As(e, &pe) {
				failed[pe.Name] = true
			}
		}
	}
	changed, err := b.links.Sync(cfg.Interface, cfg.MTU, cfg.Addresses)
	if err != nil {
		errs = append(errs, err)
	}
	b.record(cfg, want, keep, p, failed, errs)
	b.deferKeepalives(p)
	if !p.empty() || changed {
		b.log.Info("wgmesh applied", "interface", cfg.Interface, "peers", len(want),
			"changed_peers", len(p.units), "removed", len(p.removals), "link_changed", changed,
			"errors", len(errs))
	}
	return errors.Join(errs...)
}

// resolve validates and resolves the peers. keep collects keys of invalid
// peers whose live state must not be touched.
func (b *Backend) resolve(ctx context.Context, cfg wgmesh.Config) ([]wantPeer, map[wgtypes.Key]bool, []error) {
	var errs []error
	keep := map[wgtypes.Key]bool{}
	count := map[wgtypes.Key]int{}
	keys := make([]wgtypes.Key, len(cfg.Peers))
	bad := make([]bool, len(cfg.Peers))
	fail := func(i int, err error) {
		bad[i] = true
		errs = append(errs, &wgmesh.PeerError{Name: cfg.Peers[i].Name, Err: err})
	}
	for i, pe := range cfg.Peers {
		k, err := wgtypes.ParseKey(pe.PublicKey)
		if err != nil {
			fail(i, fmt.Errorf("%w: %q", wgmesh.ErrBadKey, pe.PublicKey))
			continue
		}
		keys[i] = k
		count[k]++
	}
	own := wgtypes.Key(cfg.PrivateKey.PublicKey())
	for i := range cfg.Peers {
		if bad[i] {
			continue
		}
		switch {
		case count[keys[i]] > 1:
			keep[keys[i]] = true
			fail(i, fmt.Errorf("%w: %s", wgmesh.ErrDuplicateKey, keys[i]))
		case keys[i] == own:
			fail(i, wgmesh.ErrOwnKey)
		}
	}
	owner := map[netip.Prefix]string{}
	var want []wantPeer
	for i, pe := range cfg.Peers {
		if bad[i] {
			continue
		}
		w := wantPeer{name: pe.Name, key: keys[i], keepalive: pe.PersistentKeepalive}
		var perr error
		for _, pfx := range pe.AllowedIPs {
			if !pfx.IsValid() {
				perr = fmt.Errorf("%w: %v", wgmesh.ErrBadPrefix, pfx)
				break
			}
			m := pfx.Masked()
			if o, ok := owner[m]; ok && o != pe.Name {
				perr = fmt.Errorf("%w: %s is also peer %q's", wgmesh.ErrPrefixConflict, m, o)
				break
			}
			if !slices.Contains(w.allowed, m) {
				w.allowed = append(w.allowed, m)
			}
		}
		if perr == nil && pe.Endpoint != "" {
			w.endpoint, perr = b.endpoint(ctx, pe.Endpoint)
		}
		if perr != nil {
			keep[keys[i]] = true
			fail(i, perr)
			continue
		}
		for _, m := range w.allowed {
			owner[m] = pe.Name
		}
		slices.SortFunc(w.allowed, netip.Prefix.Compare)
		want = append(want, w)
	}
	return want, keep, errs
}

func (b *Backend) endpoint(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q: %v", wgmesh.ErrUnresolvable, s, err)
	}
	pn, err := net.LookupPort("udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q: %v", wgmesh.ErrUnresolvable, s, err)
	}
	addrs, err := b.opts.Resolve(ctx, host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: %q: %v", wgmesh.ErrUnresolvable, s, err)
	}
	// Prefer IPv4: the underlay of most Kedge sites is v4 only.
	slices.SortStableFunc(addrs, func(x, y netip.Addr) int {
		return boolInt(x.Unmap().Is6()) - boolInt(y.Unmap().Is6())
	})
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(pn)), nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// apply sends phase one as one wgctrl call. If the device rejects it, phase
// one is retried per peer so one bad peer fails alone. Phase two follows.
func (b *Backend) apply(iface string, p plan) []error {
	var errs []error
	if c, ok := p.phaseOne(); ok {
		if err := b.wg.ConfigureDevice(iface, c); err != nil {
			errs = append(errs, b.applyEach(iface, p, err)...)
		}
	}
	if len(p.removals) > 0 {
		if err := b.wg.ConfigureDevice(iface, wgtypes.Config{Peers: p.removals}); err != nil {
			errs = append(errs, fmt.Errorf("remove %d peers from %s: %w", len(p.removals), iface, err))
		}
	}
	return errs
}

func (b *Backend) applyEach(iface string, p plan, batchErr error) []error {
	var errs []error
	if p.privateKey != nil || p.listenPort != nil {
		err := b.wg.ConfigureDevice(iface, wgtypes.Config{PrivateKey: p.privateKey, ListenPort: p.listenPort})
		if err != nil {
			errs = append(errs, fmt.Errorf("configure device %s: %w", iface, err))
		}
	}
	for _, u := range p.units {
		if err := b.wg.ConfigureDevice(iface, wgtypes.Config{Peers: u.peers}); err != nil {
			errs = append(errs, &wgmesh.PeerError{Name: u.name, Err: fmt.Errorf("%w: %v", wgmesh.ErrDeviceRejected, err)})
		}
	}
	if len(errs) == 0 {
		// The batch failed but every piece went through on its own: say so,
		// the device may have been busy or restarted in between.
		b.log.Warn("wgmesh batch failed, per-peer retry succeeded", "interface", iface, "error", batchErr)
	}
	return errs
}

// record remembers what was applied, for endpoint diffs and status.
func (b *Backend) record(cfg wgmesh.Config, want []wantPeer, keep map[wgtypes.Key]bool, p plan, failed map[string]bool, errs []error) {
	now := b.opts.Now()
	b.iface = cfg.Interface
	names := make(map[wgtypes.Key]string, len(want))
	addrs := map[netip.Prefix]string{}
	wants := make(map[wgtypes.Key]wantPeer, len(want))
	// A peer this Set could not apply keeps what the device still has, so
	// it stays in status and the drain listener still knows its addresses.
	carry := func(k wgtypes.Key) {
		old, ok := b.names[k]
		if !ok {
			return
		}
		names[k] = old
		for pfx, n := range b.addrs {
			if n == old {
				addrs[pfx] = n
			}
		}
		if w, ok := b.wants[k]; ok {
			wants[k] = w
		}
	}
	for k := range keep {
		carry(k)
	}
	for _, w := range want {
		if failed[w.name] {
			carry(w.key)
			continue
		}
		names[w.key] = w.name
		for _, pfx := range w.allowed {
			addrs[pfx] = w.name
		}
		if ep, ok := p.endpoints[w.key]; ok {
			b.lastEP[w.key] = ep
		}
		if _, ok := b.since[w.key]; !ok {
			b.since[w.key] = now
		}
	}
	for k := range b.since {
		if _, ok := names[k]; !ok {
			delete(b.since, k)
			delete(b.lastEP, k)
		}
	}
	for _, w := range want {
		if !failed[w.name] {
			wants[w.key] = w
		}
	}
	b.names, b.addrs, b.wants = names, addrs, wants
	b.peerErrs = map[string]error{}
	for _, e := range errs {
		var pe *wgmesh.PeerError
		if errors.As(e, &pe) {
			b.peerErrs[pe.Name] = pe.Err
		}
	}
}

// PeerForAddr maps a tunnel source address to the name of the peer whose
// allowed IPs (as last applied) contain it, longest prefix first. The drain
// listener uses it to authenticate senders by WireGuard's cryptokey routing.
func (b *Backend) PeerForAddr(a netip.Addr) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, name := -1, ""
	for pfx, n := range b.addrs {
		if pfx.Contains(a) && pfx.Bits() > best {
			best, name = pfx.Bits(), n
		}
	}
	return name, best >= 0
}

// Errors of a Config that cannot be applied at all.
var (
	errNoPrivateKey    = errors.New("no private key")
	errBadInterfaceLen = errors.New("interface name must be 1-15 bytes")
)

// withDefaults returns cfg with the defaults filled in and checks the device
// level fields; an error here means nothing can be applied.
func withDefaults(cfg wgmesh.Config) (wgmesh.Config, error) {
	if cfg.Interface == "" {
		cfg.Interface = wgmesh.DefaultInterface
	}
	if len(cfg.Interface) > 15 {
		return cfg, fmt.Errorf("check interface %q: %w", cfg.Interface, errBadInterfaceLen)
	}
	if cfg.PrivateKey.IsZero() {
		return cfg, fmt.Errorf("check config: %w", errNoPrivateKey)
	}
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		return cfg, fmt.Errorf("check listen port %d: out of range", cfg.ListenPort)
	}
	for _, a := range cfg.Addresses {
		if !a.IsValid() {
			return cfg, fmt.Errorf("check address %v: invalid prefix", a)
		}
	}
	return cfg, nil
}
