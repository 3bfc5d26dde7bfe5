package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/host"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

type meshApplierConfig struct {
	backend  wgmesh.Backend
	st       applierStore
	log      *slog.Logger
	node     string // this node's name: the peer name its peers use for it
	netns    string // namespace path of the device
	priv     wgmesh.Key
	pub      wgmesh.Key
	opts     meshOptions
	platform Platform
	clock    Clock
	// lockDevice takes a device name's host-wide lock (nil: none taken);
	// held is one the daemon took at start.
	lockDevice DeviceLocker
	held       HeldDevice
}

// applierStore is what the applier needs of the tree store
// (*store.Store): reading the tree, writing mesh state, and the durable
// record of posture-down peers.
type applierStore interface {
	Read(fn func(t *tree.Tree) error) error
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
	metaStore
}

// Device is a hosted WireGuard device (*host.Host).
type Device interface {
	Name() string
	// Done is closed when the device stopped on its own.
	Done() <-chan struct{}
	Close() error
}

// Sender sends DRAIN notices through the tunnel (*drain.Sender).
type Sender interface {
	// Drain tells each target that this node tears its tunnel down at
	// level, and returns each target's outcome when acknowledged or when
	// ctx ends.
	Drain(ctx context.Context, level uint8, targets map[string]netip.Addr) map[string]error
	Close() error
}

// Platform opens what the applier needs of the machine: the embedded
// device and the DRAIN sockets. The daemon uses OS(); tests pass fakes,
// so the applier's logic runs without root.
type Platform struct {
	HostDevice func(host.Config) (Device, error)
	NewSender  func(drain.SenderConfig) (Sender, error)
	Listen     func(drain.ListenerConfig) (io.Closer, error)
}

// OS is the real platform: host.Start, drain.NewSender, drain.Listen.
func OS() Platform {
	return Platform{
		HostDevice: func(c host.Config) (Device, error) { return host.Start(c) },
		NewSender:  func(c drain.SenderConfig) (Sender, error) { return drain.NewSender(c) },
		Listen:     func(c drain.ListenerConfig) (io.Closer, error) { return drain.Listen(c) },
	}
}

// Clock is the applier's time: when a peer's DRAIN grace ends, how old a
// handshake is.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, d from now, in its own goroutine.
	AfterFunc(d time.Duration, f func())
}

// wallClock is the real Clock.
type wallClock struct{}

func (wallClock) Now() time.Time                      { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// meshApplier is the mesh's one writer: the reconciler (tree changes,
// accord in effect), the posture step (target accord) and the state
// refresher all go through it, one at a time. A Set
//
//  1. lifts posture-down marks whose reconnect leaf changed since the DRAIN
//     (the de-escalation signal) and of peers no longer configured;
//  2. hosts the device once the tree describes a mesh (embedded mode);
//  3. sends DRAIN, over the tunnel, to every peer on the device that the
//     accord now withholds, and waits for the acknowledgements (bounded);
//  4. applies the smaller config (peers kept by the accord, less those
//     that drained themselves) with the backend's diffing Set;
//  5. (re)opens the DRAIN listener on the first tunnel address and the
//     sender on the interface, then writes state.
//
// So a posture-driven removal is always DRAIN first, teardown second,
// whoever triggered it: the reconciler may see a lowered config level
// before the posture engine runs its step.
type meshApplier struct {
	meshApplierConfig
	tracker *drain.Tracker
	kick    func() // asks the reconciler for a Set (a DRAIN arrived)
	// stepLevel is the level the posture step last applied (0: none yet).
	stepLevel atomic.Uint32

	mu      sync.Mutex
	last    meshIntent
	haveSet bool
	host    Device
	hostErr error // the device could not be hosted
	ln      io.Closer
	lnAt    netip.Addr
	lnIf    string
	sender  Sender
	sendIf  string
	iface   string                 // interface of the last Set
	applied map[string]wgmesh.Peer // peers given to the backend by the last Set
	setErr  error                  // device-level error of the last Set
	written map[string]meshLeaf    // state leaves last committed, by path
	devLock io.Closer              // the host-wide lock of devName
	devName string

	rmu  sync.Mutex
	down map[string]meshDown // posture-down peers, kept in the store's meta
}

func newMeshApplier(c meshApplierConfig) *meshApplier {
	if c.clock == nil {
		c.clock = wallClock{}
	}
	if c.platform.HostDevice == nil {
		c.platform = OS()
	}
	a := &meshApplier{meshApplierConfig: c, applied: map[string]wgmesh.Peer{}, down: loadMeshDown(c.st, c.log),
		devLock: c.held.Lock, devName: c.held.Name}
	a.tracker = drain.NewTracker(a.drained)
	return a
}

// drained runs on the listener's goroutine when a peer announced its
// posture teardown: mark the peer posture-down with its reconnect leaf as
// it is now (a later change of it is the de-escalation), durably, and
// have the reconciler take the peer off the device and record it.
func (a *meshApplier) drained(ev drain.Event) {
	var rc uint64
	_ = a.st.Read(func(t *tree.Tree) error {
		for _, p := range intent.MeshPeers(t, accord.Current(t)) {
			if p.Name == ev.Peer {
				rc = p.Reconnect
			}
		}
		return nil
	})
	a.rmu.Lock()
	// The applier's clock times the grace (withoutDown), so it, not the
	// listener's, stamps the DRAIN.
	a.down[ev.Peer] = meshDown{Level: ev.Level, Reconnect: rc, At: a.clock.Now()}
	a.saveDownLocked()
	a.rmu.Unlock()
	a.log.Info("peer announced posture teardown; not reconnecting until told", "peer", ev.Peer, "level", ev.Level)
	if a.kick != nil {
		// The listener acknowledges after this returns, through the
		// tunnel: the peer leaves the device only after the grace, so
		// the acknowledgement (and those of resent notices) gets out.
		a.clock.AfterFunc(meshAckGrace, a.kick)
	}
}

// meshAckGrace is how long a peer that announced its posture teardown
// stays on the device, so the acknowledgements of its DRAIN (resent
// every 20 ms until acknowledged) travel back through the tunnel.
const meshAckGrace = 200 * time.Millisecond

// Set makes the device, the DRAIN sockets and the mesh state match mi.
func (a *meshApplier) Set(ctx context.Context, mi meshIntent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last, a.haveSet = mi, true
	if !mi.configured {
		return a.leaveMesh(ctx)
	}
	a.liftPostureDown(mi)
	// The device name is this daemon's before the device is touched.
	oldLock, err := a.ensureDeviceLock(mi.cfg.Interface)
	if err != nil {
		a.setErr = err
		a.writeStateLocked(ctx, nil)
		return err
	}
	err = a.ensureHost(mi.cfg)
	if oldLock != nil {
		// The renamed device is gone (closed, or a sidecar's no longer
		// configured by this daemon): its name is free.
		oldLock.Close()
	}
	if err != nil {
		a.setErr = err
		a.writeStateLocked(ctx, nil)
		return err
	}
	want := a.withoutDown(mi.cfg.Peers)
	a.drainWithheld(ctx, mi, want)

	cfg := mi.cfg
	cfg.Peers = want
	err = a.backend.Set(ctx, cfg)
	if ctx.Err() != nil {
		return err
	}
	a.iface = cfg.Interface
	a.setErr = nil
	if err != nil && !peerErrorsOnly(err) {
		a.setErr = err
	}
	a.applied = make(map[string]wgmesh.Peer, len(want))
	for _, p := range want {
		a.applied[p.Name] = p
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if a.setErr == nil {
		if serr := a.ensureSockets(cfg); serr != nil {
			errs = append(errs, serr)
		}
	}
	st, serr := a.backend.Status()
	var stp *wgmesh.Status
	if serr == nil {
		stp = &st
	}
	a.writeStateLocked(ctx, stp)
	return errors.Join(errs...)
}

// leaveMesh undoes the mesh once the tree no longer describes one (or
// never did): the embedded device is closed (a sidecar's is emptied of
// peers), its name released, and the state says the node is
// unconfigured, with the key and the interface and port a configuration
// would use.
func (a *meshApplier) leaveMesh(ctx context.Context) error {
	var err error
	if a.host != nil || len(a.applied) > 0 || a.iface != "" {
		if a.opts.device == DeviceExternal && a.iface != "" {
			err = a.backend.Set(ctx, wgmesh.Config{Interface: a.iface, PrivateKey: a.priv})
		}
		a.closeDevice()
		a.applied, a.hostErr, a.setErr, a.iface = map[string]wgmesh.Peer{}, nil, nil, ""
	}
	a.releaseDeviceLock()
	a.writeStateLocked(ctx, nil)
	return err
}

// liftPostureDown clears posture-down peers whose reconnect leaf changed
// since their DRAIN, and forgets peers no longer configured.
func (a *meshApplier) liftPostureDown(mi meshIntent) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	changed := false
	for name, d := range a.down {
		p, ok := mi.configuredPeer(name)
		if ok && p.Reconnect == d.Reconnect {
			continue
		}
		delete(a.down, name)
		a.tracker.Clear(name)
		changed = true
		if ok {
			a.log.Info("posture-down peer reconnected by de-escalation", "peer", name)
		}
	}
	if changed {
		a.saveDownLocked()
	}
}

// postureDown reports whether the peer announced its posture teardown
// and has not been reconnected since.
func (a *meshApplier) postureDown(name string) bool {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	_, ok := a.down[name]
	return ok
}

// withoutDown returns peers less the posture-down ones: a node does not
// reconnect to a peer that drained itself. A plain failure is not here
// and keeps being retried by WireGuard.
func (a *meshApplier) withoutDown(peers []wgmesh.Peer) []wgmesh.Peer {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	now := a.clock.Now()
	out := make([]wgmesh.Peer, 0, len(peers))
	for _, p := range peers {
		if d, down := a.down[p.Name]; !down || now.Sub(d.At) < meshAckGrace {
			out = append(out, p)
		}
	}
	return out
}

// ensureHost starts (or, after an interface rename, replaces) the
// embedded device. In external mode the device is someone else's.
func (a *meshApplier) ensureHost(cfg wgmesh.Config) error {
	if a.opts.device == DeviceExternal {
		return nil
	}
	if a.host != nil && a.host.Name() == cfg.Interface {
		select {
		case <-a.host.Done():
			a.log.Warn("mesh device stopped; hosting it again", "interface", cfg.Interface)
		default:
			return nil
		}
	}
	a.closeDevice()
	h, err := a.platform.HostDevice(host.Config{Name: cfg.Interface, MTU: cfg.MTU, Netns: a.netns, Logger: a.log})
	if err != nil {
		a.hostErr = err
		return fmt.Errorf("host mesh device: %w", err)
	}
	a.host, a.hostErr = h, nil
	a.applied = map[string]wgmesh.Peer{}
	return nil
}

// drainWithheld tells each peer that is on the device now and that the
// accord withholds (not one deleted from config, not one that drained
// itself) that this node is tearing its tunnel down, before the Set that
// removes it. Unacknowledged notices are logged; the teardown proceeds:
// posture wins over courtesy.
func (a *meshApplier) drainWithheld(ctx context.Context, mi meshIntent, want []wgmesh.Peer) {
	if a.sender == nil {
		return
	}
	keep := make(map[string]bool, len(want))
	for _, p := range want {
		keep[p.Name] = true
	}
	targets := map[string]netip.Addr{}
	for name, p := range a.applied {
		if keep[name] || mi.kept(name) {
			continue
		}
		if _, ok := mi.configuredPeer(name); !ok {
			continue
		}
		if addr, ok := drainAddr(p); ok {
			targets[name] = addr
		}
	}
	if len(targets) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, a.opts.drainTimeout)
	defer cancel()
	for name, err := range a.sender.Drain(dctx, mi.level, targets) {
		if err != nil {
			a.log.Warn("drain notice not delivered; tearing down anyway", "peer", name, "err", err)
		}
	}
}

// drainAddr is where a peer's DRAIN listener is: its tunnel address,
// taken as its first host prefix (/32, /128) among its allowed IPs, else
// the first allowed prefix's address.
func drainAddr(p wgmesh.Peer) (netip.Addr, bool) {
	for _, pfx := range p.AllowedIPs {
		if pfx.IsSingleIP() {
			return pfx.Addr(), true
		}
	}
	if len(p.AllowedIPs) > 0 {
		return p.AllowedIPs[0].Addr(), true
	}
	return netip.Addr{}, false
}

// ensureSockets opens the DRAIN sender on the interface and the listener
// on the first tunnel address, again when either changed.
func (a *meshApplier) ensureSockets(cfg wgmesh.Config) error {
	var errs []error
	if a.sender == nil || a.sendIf != cfg.Interface {
		a.closeSender()
		s, err := a.platform.NewSender(drain.SenderConfig{Node: a.node, Device: cfg.Interface, Netns: a.netns, Logger: a.log})
		if err != nil {
			errs = append(errs, err)
		} else {
			a.sender, a.sendIf = s, cfg.Interface
		}
	}
	var at netip.Addr
	if len(cfg.Addresses) > 0 {
		at = cfg.Addresses[0].Addr()
	}
	if a.ln != nil && a.lnAt == at && a.lnIf == cfg.Interface {
		return errors.Join(errs...)
	}
	a.closeListener()
	if !at.IsValid() {
		return errors.Join(errs...) // no tunnel address: nobody can reach a listener
	}
	ln, err := a.platform.Listen(drain.ListenerConfig{Device: cfg.Interface, Addr: at, Netns: a.netns,
		Lookup: a.backend.PeerForAddr, Tracker: a.tracker, Logger: a.log})
	if err != nil {
		errs = append(errs, err)
	} else {
		a.ln, a.lnAt, a.lnIf = ln, at, cfg.Interface
	}
	return errors.Join(errs...)
}

func (a *meshApplier) closeSender() {
	if a.sender != nil {
		a.sender.Close()
		a.sender = nil
	}
}

func (a *meshApplier) closeListener() {
	if a.ln != nil {
		a.ln.Close()
		a.ln = nil
	}
}

// closeDevice closes the sockets bound to the device, then the device.
func (a *meshApplier) closeDevice() {
	a.closeSender()
	a.closeListener()
	if a.host != nil {
		if err := a.host.Close(); err != nil {
			a.log.Warn("close mesh device", "err", err)
		}
		a.host = nil
	}
}

// close is the daemon's shutdown: the embedded device goes with it (its
// peers see the tunnel go quiet; a sidecar's device stays), then its
// name's lock.
func (a *meshApplier) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closeDevice()
	a.releaseDeviceLock()
	return nil
}

// ensureDeviceLock holds the host-wide lock of the device name before the
// device is hosted or configured, so two daemons never drive one device.
// It returns the previous name's lock, for the caller to release once
// that device is gone. A name another daemon holds fails with its
// hostlock.HeldError (the reconciler retries; state says who holds it).
func (a *meshApplier) ensureDeviceLock(name string) (io.Closer, error) {
	if a.lockDevice == nil || (a.devLock != nil && a.devName == name) {
		return nil, nil
	}
	l, err := a.lockDevice(name)
	if err != nil {
		return nil, err
	}
	old := a.devLock
	a.devLock, a.devName = l, name
	return old, nil
}

// releaseDeviceLock releases the device name once no device of this
// daemon has it.
func (a *meshApplier) releaseDeviceLock() {
	if a.devLock != nil {
		if err := a.devLock.Close(); err != nil {
			a.log.Warn("release mesh device lock", "interface", a.devName, "err", err)
		}
		a.devLock, a.devName = nil, ""
	}
}
