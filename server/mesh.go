package server

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
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
	// meshDeviceEmbedded: the daemon hosts the device itself (kernel
	// WireGuard, else wireguard-go in the daemon's namespace). A daemon
	// restart drops the tunnels.
	meshDeviceEmbedded = "embedded"
	// meshDeviceExternal: a sidecar (cmd/kedge-wg) or the operator owns
	// the device; the daemon only configures it through wgctrl and waits
	// (retrying) until it exists.
	meshDeviceExternal = "external"
)

// meshOptions are the mesh's knobs that are not in the tree.
type meshOptions struct {
	device       string        // meshDeviceEmbedded or meshDeviceExternal
	refresh      time.Duration // state refresh period
	drainTimeout time.Duration // how long a DRAIN waits for acknowledgements
}

func defaultMeshOptions() meshOptions {
	// A DRAIN round trip inside a live tunnel takes well under a
	// millisecond; the timeout only bounds a peer that is already gone,
	// and keeps teardown far inside the seed's 5 s overlay budget.
	return meshOptions{device: meshDeviceEmbedded, refresh: 2 * time.Second, drainTimeout: time.Second}
}

// startMesh runs the WireGuard mesh when the dataplane is on and the probe
// found WireGuard (kernel or /dev/net/tun). It loads (or creates) the
// node's key and starts the reconciler, the state refresher and the
// posture step at once, but creates no device until the tree describes a
// mesh (/kedge/mesh/config or a peer): a node that is not part of a mesh
// gets no interface, and a test daemon in the host's namespace leaves
// that namespace alone. See meshApplier for the rest.
//
// Conventions the mesh relies on: a peer's list key under
// /kedge/mesh/peers is that peer's node name (its DRAIN notices carry
// it, and the listener checks it against the peer owning the notice's
// tunnel source address), and a peer's DRAIN listener is on its tunnel
// address, its first /32 or /128 allowed IP. A peer that announced its
// posture teardown stays posture-down (off the device, durably) until its
// config/reconnect leaf is given a new value by a gNMI Set on this node.
func (d *Daemon) startMesh(dp *dataplane, on bool, avail map[string]bool) ([]posture.Step, error) {
	if !on || !avail["wgmesh"] {
		return nil, nil
	}
	log := d.log.With("component", "mesh")
	priv, pub, err := wgmesh.LoadOrCreateKey(d.cfg.DataDir)
	if err != nil {
		// Without its key the node cannot join any mesh; the rest of the
		// dataplane still runs.
		d.log.Warn("mesh unavailable", "err", err)
		return nil, nil
	}
	ns := meshNetnsPath(d.cfg.NetNS)
	b, err := wgdevice.New(wgdevice.Options{Netns: ns, Logger: log})
	if err != nil {
		d.log.Warn("mesh backend unavailable", "netns", d.cfg.NetNS, "err", err)
		return nil, nil
	}
	opts := defaultMeshOptions()
	if d.cfg.MeshDevice != "" {
		opts.device = d.cfg.MeshDevice
	}
	ap := newMeshApplier(meshApplierConfig{
		backend: b, st: d.st, log: log, node: d.cfg.NodeName, netns: ns,
		priv: priv, pub: pub, opts: opts,
	})
	rec := reconcile.New[meshIntent](d.st, func(t *tree.Tree) (meshIntent, error) {
		return ap.intent(t, ap.reconcileAccord(t))
	}, meshReconcileSetter{ap}, reconcile.Options[meshIntent]{
		Name: "mesh", Logger: log, Prefixes: meshConfigPrefixes, StatePrefixes: meshStatePrefixes,
		RetryMax: 5 * time.Second})
	ap.kick = rec.Kick

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if !dp.waitReady(ctx) {
			return
		}
		if err := rec.Run(ctx); err != nil {
			log.Error("mesh reconciler stopped", "err", err)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		ap.refreshLoop(ctx)
	}()
	// Closers run last to first: stop the loops, then close the backend
	// handles, then the device and the drain sockets.
	dp.closers = append(dp.closers, ap.close, b.Close, func() error {
		cancel()
		<-done
		<-done
		return nil
	})
	d.log.Info("mesh backend", "netns", d.cfg.NetNS, "public_key", pub.String(), "device", opts.device)
	step := posture.IntentStep[meshIntent]("mesh", posture.StageMesh, d.st, ap.intent, meshStep{ap})
	return []posture.Step{step}, nil
}

// meshNetnsPath turns the daemon's --netns (a name under /run/netns, a
// path, or empty) into the path the mesh packages take.
func meshNetnsPath(ns string) string {
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
	base := wgmesh.Config{Interface: wgmesh.DefaultInterface, PrivateKey: a.priv}
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
