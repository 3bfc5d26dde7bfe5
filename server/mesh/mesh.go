// Package mesh is the daemon's WireGuard mesh component: it keeps the
// mesh device matching /kedge/mesh under the accord of the posture level
// (DRAIN first for the peers a stricter level withholds, teardown second),
// remembers durably which peers announced their own teardown, and writes
// the mesh's and each peer's state. Everything goes through one applier,
// which takes its backend, its platform (device hosting, DRAIN sockets)
// and its clock as small interfaces, so its logic is tested without root.
package mesh

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/reconcile"
)

// Tree paths the mesh reconciler follows: its own config and the accords,
// and of state only the effective level, so the state it writes (under
// /kedge/mesh/.../state) never triggers it again.
var (
	meshConfigPrefixes = []string{kedgepath.Root().Kedge().Mesh().SchemaPath(), kedgepath.Root().Kedge().Accords().SchemaPath()}
	meshStatePrefixes  = []string{kedgepath.Root().Kedge().Posture().State().EffectiveLevel().SchemaPath()}
)

// Mesh device modes (--mesh-device).
const (
	// DeviceEmbedded: the daemon hosts the device itself (kernel
	// WireGuard, else wireguard-go in the daemon's namespace). A daemon
	// restart drops the tunnels.
	DeviceEmbedded = "embedded"
	// DeviceExternal: a sidecar (cmd/kedge-wg) or the operator owns the
	// device; the daemon only configures it through wgctrl and waits
	// (retrying) until it exists.
	DeviceExternal = "external"
)

// meshOptions are the mesh's knobs that are not in the tree.
type meshOptions struct {
	device       string        // DeviceEmbedded or DeviceExternal
	refresh      time.Duration // state refresh period
	drainTimeout time.Duration // how long a DRAIN waits for acknowledgements
}

func defaultMeshOptions() meshOptions {
	// A DRAIN round trip inside a live tunnel takes well under a
	// millisecond; the timeout only bounds a peer that is already gone,
	// and keeps teardown far inside the seed's 5 s overlay budget.
	return meshOptions{device: DeviceEmbedded, refresh: 2 * time.Second, drainTimeout: time.Second}
}

// Store is what the component needs of the tree store (*store.Store):
// the reconciler's reads and state writes, and the meta record of
// posture-down peers.
type Store interface {
	reconcile.Source
	metaStore
}

// Config is what a Component is built from.
type Config struct {
	// Backend configures the device; the Component owns it and closes it.
	Backend wgmesh.Backend
	Store   Store
	Logger  *slog.Logger
	// Node is this node's name: the peer name its peers use for it.
	Node string
	// NetNS is the daemon's --netns: a name under /run/netns, a path, or
	// empty for the daemon's own namespace.
	NetNS string
	// Private and Public are the node's key pair (wgmesh.LoadOrCreateKey).
	Private, Public wgmesh.Key
	// Device is DeviceEmbedded (the default) or DeviceExternal.
	Device string
	// Ready is as in package routes: waited for before the first
	// reconcile; false when ctx ends.
	Ready func(ctx context.Context) bool
	// Platform and Clock default to OS() and the wall clock.
	Platform Platform
	Clock    Clock
	// LockDevice takes a device name's host-wide lock before the device
	// is hosted or configured (nil: no lock); Held is the one the daemon
	// took at start, handed over. The component releases both.
	LockDevice DeviceLocker
	Held       HeldDevice
}

// Component is the mesh component: the reconciler, the state refresher
// and the posture step, over one applier. Create it with New, start it
// once with Start, and Close it.
type Component struct {
	cfg    Config
	ap     *meshApplier
	rec    *reconcile.Reconciler[meshIntent]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the component; nothing runs until Start. It creates no
// device until the tree describes a mesh (/kedge/mesh/config or a peer):
// a node that is not part of a mesh gets no interface, and a test daemon
// in the host's namespace leaves that namespace alone. See meshApplier
// for the rest.
//
// Conventions the mesh relies on: a peer's list key under
// /kedge/mesh/peers is that peer's node name (its DRAIN notices carry
// it, and the listener checks it against the peer owning the notice's
// tunnel source address), and a peer's DRAIN listener is on its tunnel
// address, its first /32 or /128 allowed IP. A peer that announced its
// posture teardown stays posture-down (off the device, durably) until its
// config/reconnect leaf is given a new value by a gNMI Set on this node.
func New(c Config) *Component {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	opts := defaultMeshOptions()
	if c.Device != "" {
		opts.device = c.Device
	}
	ap := newMeshApplier(meshApplierConfig{
		backend: c.Backend, st: c.Store, log: c.Logger, node: c.Node, netns: NetnsPath(c.NetNS),
		priv: c.Private, pub: c.Public, opts: opts, platform: c.Platform, clock: c.Clock,
		lockDevice: c.LockDevice, held: c.Held,
	})
	rec := reconcile.New[meshIntent](c.Store, func(t *tree.Tree) (meshIntent, error) {
		return ap.intent(t, ap.reconcileAccord(t))
	}, meshReconcileSetter{ap}, reconcile.Options[meshIntent]{
		Name: "mesh", Logger: c.Logger, Prefixes: meshConfigPrefixes, StatePrefixes: meshStatePrefixes,
		RetryMax: 5 * time.Second})
	ap.kick = rec.Kick
	return &Component{cfg: c, ap: ap, rec: rec}
}

// Step is the component's posture step (stage mesh): the mesh under the
// target accord, DRAIN first for the peers it withholds.
func (c *Component) Step() posture.Step {
	return posture.IntentStep[meshIntent]("mesh", posture.StageMesh, c.cfg.Store, c.ap.intent, meshStep{c.ap})
}

// Start publishes the node's own mesh state (public key, interface,
// listen port, status) before it returns, so a Get on a fresh node finds
// it before any mesh is configured, then runs the reconciler and the
// state refresher until ctx ends or Close.
func (c *Component) Start(ctx context.Context) error {
	c.ap.publishInitial(ctx)
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if c.cfg.Ready != nil && !c.cfg.Ready(ctx) {
			return
		}
		if err := c.rec.Run(ctx); err != nil {
			c.cfg.Logger.Error("mesh reconciler stopped", "err", err)
		}
	}()
	go func() {
		defer c.wg.Done()
		c.ap.refreshLoop(ctx)
	}()
	return nil
}

// Close stops the loops, closes the backend's handles, then the embedded
// device and the DRAIN sockets (a sidecar's device stays).
func (c *Component) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return errors.Join(c.cfg.Backend.Close(), c.ap.close())
}

// NetnsPath turns the daemon's --netns (a name under /run/netns, a path,
// or empty) into the path the mesh packages take.
func NetnsPath(ns string) string {
	if ns == "" || strings.ContainsRune(ns, '/') {
		return ns
	}
	return filepath.Join("/run/netns", ns)
}

// meshIntent is what one mesh Set needs: the device config under the
// accord (before posture-down peers are filtered out, which depends on
// DRAINs received, not on the tree) and every configured peer, so state
// can say why a peer is not on the device.
type meshIntent struct {
	configured bool
	cfg        wgmesh.Config
	peers      []intent.MeshPeer
	level      uint8
	isolated   bool
	staleAfter time.Duration
}

// kept reports whether the accord keeps the named peer.
func (mi meshIntent) kept(name string) bool {
	for _, p := range mi.cfg.Peers {
		if p.Name == name {
			return true
		}
	}
	return false
}

// configuredPeer returns the named configured peer.
func (mi meshIntent) configuredPeer(name string) (intent.MeshPeer, bool) {
	for _, p := range mi.peers {
		if p.Name == name {
			return p, true
		}
	}
	return intent.MeshPeer{}, false
}

// intent is the pure translation of the tree under an accord, shared by
// the reconciler (accord in effect) and the posture step (target accord).
func (a *meshApplier) intent(t *tree.Tree, acc accord.Accord) (meshIntent, error) {
	base := wgmesh.Config{Interface: wgmesh.DefaultInterface, ListenPort: wgmesh.DefaultListenPort, PrivateKey: a.priv}
	return meshIntent{
		configured: intent.MeshConfigured(t),
		cfg:        intent.Mesh(t, acc, base),
		peers:      intent.MeshPeers(t, acc),
		level:      acc.Level,
		isolated:   acc.OverlayMode == accord.OverlayIsolated,
		staleAfter: intent.StaleAfter(acc),
	}, nil
}

// reconcileAccord is the accord the reconciler applies: the one in
// effect (accord.Current), except while a de-escalation is under way and
// the posture step has already brought the mesh up to a looser level
// than the effective level the engine publishes only after its last step.
// Re-tightening then would tear the restored tunnels down again and, worse,
// send the peers a second DRAIN, which they would honour until told
// otherwise. The configured level still bounds it.
func (a *meshApplier) reconcileAccord(t *tree.Tree) accord.Accord {
	cur := accord.Current(t)
	step := uint8(a.stepLevel.Load())
	if step == 0 || step <= cur.Level {
		return cur
	}
	acc, err := accord.Effective(min(accord.ConfigLevel(t), step), accord.OverridesFromTree(t))
	if err != nil {
		return cur
	}
	return acc
}

// meshStep is the applier as the posture engine's overlay step. A peer
// the device rejects (bad key, duplicate, unresolvable endpoint) is in
// its state and retried by the reconciler; it does not fail the
// transition.
type meshStep struct{ a *meshApplier }

func (s meshStep) Set(ctx context.Context, mi meshIntent) error {
	s.a.stepLevel.Store(uint32(mi.level))
	err := s.a.Set(ctx, mi)
	if err != nil && peerErrorsOnly(err) {
		return nil
	}
	return err
}

// meshReconcileSetter is the applier under the reconciler, which retries
// whatever Set returns: only failures that can heal without a tree change
// are returned (the device, an endpoint whose name may resolve later, a
// device that refused a peer). A malformed, duplicate or conflicting
// peer waits in its state for the operator's fix, which is a tree change.
type meshReconcileSetter struct{ a *meshApplier }

func (s meshReconcileSetter) Set(ctx context.Context, mi meshIntent) error {
	return retryable(s.a.Set(ctx, mi))
}

// retryable keeps of err what a retry may fix.
func retryable(err error) error {
	if err == nil || !peerErrorsOnly(err) {
		return err
	}
	var retry []error
	for _, e := range splitErrors(err) {
		if errors.Is(e, wgmesh.ErrUnresolvable) || errors.Is(e, wgmesh.ErrDeviceRejected) {
			retry = append(retry, e)
		}
	}
	return errors.Join(retry...)
}

// peerErrorsOnly reports whether err holds only per-peer failures.
func peerErrorsOnly(err error) bool {
	errs := splitErrors(err)
	for _, e := range errs {
		var pe *wgmesh.PeerError
		if !errors.As(e, &pe) {
			return false
		}
	}
	return len(errs) > 0
}

// splitErrors lists the errors an errors.Join holds, or err alone.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
